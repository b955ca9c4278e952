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


def test_from_torchvision_rejects_other_state_dicts():
    with pytest.raises(ValueError, match="none of torchvision"):
        from_torchvision(build("C", width=0.125, image_size=32).state_dict())


@pytest.mark.parametrize("head", ["paper", "torchvision", "gap"])
def test_fully_convolutional_agrees_at_training_size(head):
    model = build("D", width=0.25, head=head, num_classes=10).eval()
    dense = fully_convolutional(model).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(dense(x), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size", [256, 384])
def test_fully_convolutional_runs_on_larger_inputs(size):
    model = build("A", width=0.125, num_classes=10).eval()
    dense = fully_convolutional(model).eval()
    with torch.no_grad():
        assert dense(torch.randn(1, 3, size, size + 32)).shape == (1, 10)


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
