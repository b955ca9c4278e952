import pytest
import torch
import torchvision

from vggcore import build, from_torchvision, fully_convolutional, to_torchvision

TV_NAMES = ["vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]


@pytest.mark.parametrize("name", TV_NAMES)
def test_from_torchvision_gives_same_logits_and_round_trips(name):
    tv = getattr(torchvision.models, name)(weights=None).eval()
    if "bn" in name:  # non-trivial BN statistics so eval mode really uses them
        for m in tv.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    ours = from_torchvision(tv)
    assert ours.config.name == {"11": "A", "13": "B", "16": "D", "19": "E"}[name[3:5]] + ("_bn" if "bn" in name else "")
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        expected, got = tv(x), ours(x)
    assert ((got - expected).norm() / expected.norm()).item() < 1e-5
    # state dicts round-trip both ways with the same keys
    assert list(ours.state_dict()) == list(tv.state_dict())
    with torch.device("meta"):
        back = getattr(torchvision.models, name)(weights=None)
    back.load_state_dict(ours.state_dict(), assign=True)
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), tv.state_dict().values()))
    assert from_torchvision(tv.state_dict()).config == ours.config


def test_to_torchvision_round_trip():
    ours = build("vgg11", head="torchvision", num_classes=10).eval()
    tv = to_torchvision(ours).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(tv(x), ours.forward_head(ours.forward_features(x)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["vgg16_bn", "vgg19"])
def test_to_torchvision_deeper_nets_give_the_same_logits(name):
    ours = build(name, head="torchvision", num_classes=10).eval()
    for m in ours.modules():  # non-trivial BN statistics so eval mode really uses them
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    tv = to_torchvision(ours)
    assert type(tv) is torchvision.models.VGG and not tv.training
    assert tv.classifier[6].out_features == 10 and len(tv.features) == len(ours.features)
    assert all(torch.equal(a, b) for a, b in zip(tv.state_dict().values(), ours.state_dict().values()))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected, got = ours.forward_head(ours.forward_features(x)), tv(x)
    assert ((got - expected).norm() / expected.norm()).item() < 1e-5


@pytest.mark.parametrize("arch,overrides,match", [
    ("C", {}, r"configuration C has no torchvision counterpart; torchvision has A, B, D, E"),
    ("A-LRN", {}, r"configuration A-LRN has no torchvision counterpart; torchvision has A, B, D, E"),
    ("D", dict(width=0.5), r"width 0.5 has no torchvision counterpart; torchvision's VGG has width 1 only"),
    ("D", dict(head="paper"), r"head 'paper' has no torchvision counterpart; build with head='torchvision'"),
    ("D", dict(in_channels=1), r"in_channels 1 has no torchvision counterpart; torchvision's VGG takes 3"),
])
def test_to_torchvision_refuses_what_torchvision_lacks(arch, overrides, match):
    with torch.device("meta"):  # the check comes before any weights are touched
        model = build(arch, **{"head": "torchvision", **overrides})
    with pytest.raises(ValueError, match=match):
        to_torchvision(model)


@pytest.mark.parametrize("head", ["paper", "torchvision", "gap"])
def test_fully_convolutional_agrees_at_training_size(head):
    model = build("D", width=0.25, head=head, num_classes=10).eval()
    dense = fully_convolutional(model).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(dense(x), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("head", ["paper", "torchvision", "gap"])
@pytest.mark.parametrize("size", [256, 384])
def test_fully_convolutional_on_larger_inputs_averages_every_window(head, size):
    """On a larger image the dense net's score is the mean of the original net's classifier over every
    7x7 window of the feature map (section 3.2), computed here with the original Linear layers."""
    model = build("A", width=0.125, num_classes=10, head=head).eval()
    dense = fully_convolutional(model).eval()
    x = torch.randn(2, 3, size, size + 32)
    with torch.no_grad():
        got = dense(x)
        f = model.forward_features(x)                                    # (2, C, size/32, size/32 + 1)
        if head == "gap":  # global average first, then the classifier, whatever the size
            expected = model.forward_head(f)
        else:
            h, w = f.shape[2] - 6, f.shape[3] - 6
            windows = [model.classifier(f[:, :, i:i + 7, j:j + 7].flatten(1)) for i in range(h) for j in range(w)]
            expected = torch.stack(windows).mean(0)
    assert got.shape == (2, 10)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_fully_convolutional_full_width_a_agrees():
    model = build("A").eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        expected = model(x)
        got = fully_convolutional(model)(x)
    assert ((got - expected).norm() / expected.norm()).item() < 1e-5


def test_dense_net_rejects_too_small_input():
    dense = fully_convolutional(build("A", width=0.125, image_size=64))
    with pytest.raises(ValueError, match="H, W >= 64"):
        dense(torch.randn(1, 3, 32, 32))
