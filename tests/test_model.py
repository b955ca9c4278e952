import pytest
import torch
from torch import nn

from vggcore import ARCHS, VGGConfig, build, init_from, param_count, totals
from vggcore.model.summary import summary

# Table 2 of the paper and torchvision's models, at 224x224 and 1000 classes (../shared/PAPER.md).
PARAMS = {"A": 132_863_336, "A-LRN": 132_863_336, "B": 133_047_848, "C": 133_638_952, "D": 138_357_544,
          "E": 143_667_240, "vgg11_bn": 132_868_840, "vgg13_bn": 133_053_736, "vgg16_bn": 138_365_992,
          "vgg19_bn": 143_678_248, "vgg11": 132_863_336, "vgg16": 138_357_544}
GMACS = {"A": 7.609, "B": 11.308, "C": 11.771, "D": 15.470, "E": 19.632}


def meta_build(arch, **kw):
    with torch.device("meta"):
        return build(arch, **kw)


@pytest.mark.parametrize("arch", PARAMS)
def test_parameter_counts_match_the_paper(arch):
    assert param_count(meta_build(arch)) == PARAMS[arch]
    assert totals(summary(arch))["params"] == PARAMS[arch]


@pytest.mark.parametrize("arch", GMACS)
def test_macs_match_the_paper(arch):
    assert totals(summary(arch))["macs"] / 1e9 == pytest.approx(GMACS[arch], rel=5e-3)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("batch_norm", [False, True])
def test_every_arch_runs_forward_and_backward_small(arch, batch_norm):
    model = build(arch, batch_norm=batch_norm, width=0.125, image_size=32, num_classes=10)
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2, 10)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_config_c_has_its_1x1_convs():
    kernels = [m.kernel_size for m in build("C", width=0.125, image_size=32).features if isinstance(m, nn.Conv2d)]
    assert kernels.count((1, 1)) == 3 and len(kernels) == 13


def test_a_lrn_has_lrn_after_first_conv():
    kinds = [type(m).__name__ for m in build("A-LRN", width=0.125, image_size=32).features][:4]
    assert kinds == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]


@pytest.mark.parametrize("head,fc_in", [("paper", 512 * 7 * 7), ("torchvision", 25088), ("gap", 512)])
def test_heads_set_fc6_input(head, fc_in):
    assert meta_build("A", head=head).classifier[0].in_features == fc_in


def test_paper_head_fc_input_follows_image_size():
    assert meta_build("A", image_size=64).classifier[0].in_features == 512 * 2 * 2


def test_dropout_zero_removes_dropout_but_keeps_layout():
    model = build("A", width=0.125, image_size=32, dropout=0.0)
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())
    assert [k for k in model.state_dict() if k.startswith("classifier")] == [
        "classifier.0.weight", "classifier.0.bias", "classifier.3.weight", "classifier.3.bias",
        "classifier.6.weight", "classifier.6.bias"]
    with_dropout = build("A", width=0.125, image_size=32)
    assert [m.p for m in with_dropout.classifier if isinstance(m, nn.Dropout)] == [0.5, 0.5]


def test_aliases_normalise_to_paper_configs():
    assert VGGConfig(arch="vgg16_bn") == VGGConfig(arch="D", batch_norm=True)
    assert VGGConfig(arch="d").arch == "D"
    assert build(VGGConfig(arch="A", width=0.125, image_size=32), num_classes=7).config.num_classes == 7


@pytest.mark.parametrize("init", ["kaiming", "paper", "xavier"])
def test_init_schemes(init):
    model = build("A", init=init, width=0.25, image_size=32)
    fc = model.classifier[3].weight
    conv = model.features[3].weight
    assert float(model.classifier[3].bias.detach().abs().max()) == 0.0
    if init == "paper":
        assert fc.std().item() == pytest.approx(0.01, rel=0.05)
        assert conv.std().item() == pytest.approx(0.01, rel=0.05)
    elif init == "kaiming":
        fan_out = conv.shape[0] * 9
        assert conv.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.05)
        assert fc.std().item() == pytest.approx(0.01, rel=0.05)
    else:
        bound = (6 / (fc.shape[0] + fc.shape[1])) ** 0.5
        assert fc.abs().max().item() <= bound and fc.std().item() == pytest.approx(bound / 3 ** 0.5, rel=0.05)


def test_init_from_copies_a_into_deeper_net():
    a = build("A", width=0.125, image_size=32, batch_norm=True)
    d = build("D", width=0.125, image_size=32, batch_norm=True)
    fresh = d.features[3].weight.clone()  # conv1_2 of D (64->64) is not copied
    init_from(d, a)
    assert torch.equal(d.features[0].weight, a.features[0].weight)       # conv1_1
    assert torch.equal(d.features[7].weight, a.features[4].weight)       # conv2_1 <- A's conv2
    assert torch.equal(d.features[14].weight, a.features[8].weight)      # conv3_1 <- A's conv3
    assert torch.equal(d.features[17].weight, a.features[11].weight)     # conv3_2 <- A's conv4
    assert torch.equal(d.features[1].running_mean, a.features[1].running_mean)
    for i in (0, 3, 6):
        assert torch.equal(d.classifier[i].weight, a.classifier[i].weight)
    assert torch.equal(d.features[3].weight, fresh)


def test_init_from_refuses_mismatched_widths():
    with pytest.raises(ValueError, match="same width"):
        init_from(build("D", width=0.25, image_size=32), build("A", width=0.125, image_size=32))


@pytest.mark.parametrize("kwargs,match", [
    (dict(arch="Z"), "valid names: A, A-LRN"),
    (dict(arch="A", head="max"), "unknown head 'max'"),
    (dict(arch="A", init="he"), "unknown init 'he'"),
    (dict(arch="A", image_size=100), "multiple of 32"),
    (dict(arch="A", image_size=16, head="gap"), "at least 32"),
    (dict(arch="A", dropout=1.5), "dropout"),
    (dict(arch="A", width=0), "width"),
])
def test_bad_configs_raise_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VGGConfig(**kwargs)


def test_non_multiple_of_32_works_with_adaptive_heads():
    model = build("A", head="gap", image_size=40, width=0.125)
    assert model(torch.randn(1, 3, 40, 40)).shape == (1, 1000)


def test_unknown_override_is_a_value_error():
    with pytest.raises(ValueError, match="unknown VGGConfig field"):
        build("A", widht=0.5)


def test_wrong_input_shape_names_expected_and_received():
    model = build("A", width=0.125, image_size=32)
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 3, 32, 32\), got \(2, 1, 32, 32\)"):
        model(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"got \(2, 3, 64, 64\)"):
        model(torch.randn(2, 3, 64, 64))
