import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from vggcore import ARCHS, build, totals
from vggcore.model.summary import summary
from vggcore.cli.main import main
from vggcore.memory import saved_activation_bytes


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("head", ["paper", "torchvision", "gap"])
def test_analytic_macs_equal_measured_flops(arch, head):
    model = build(arch, width=0.125, image_size=64, head=head, num_classes=10)
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(3, 3, 64, 64))
    assert totals(summary(model, batch_size=3))["macs"] * 2 == counter.get_total_flops()


def test_full_size_macs_measured_on_meta():
    with torch.device("meta"):
        model = build("A")
        with FlopCounterMode(display=False) as counter:
            model(torch.empty(1, 3, 224, 224))
    assert totals(summary("A"))["macs"] * 2 == counter.get_total_flops()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("head,dropout", [("paper", 0.5), ("torchvision", 0.0), ("gap", 0.5)])
def test_saved_bytes_equal_autograd_saved_tensors(arch, batch_norm, head, dropout):
    model = build(arch, width=0.125, image_size=64, head=head, batch_norm=batch_norm, dropout=dropout,
                  num_classes=10).train()
    x = torch.randn(2, 3, 64, 64)
    assert totals(summary(model, batch_size=2))["saved_bytes"] == saved_activation_bytes(model, lambda: model(x))


def test_summary_columns_and_shapes():
    table = summary("D", image_size=32, width=0.25, batch_size=4)
    assert list(table.columns) == ["layer", "kind", "output_shape", "params", "macs", "activation_bytes",
                                   "saved_bytes"]
    assert table.iloc[-1]["output_shape"] == (4, 1000)
    assert table["layer"].iloc[0] == "features.0"
    assert (table["macs"] >= 0).all()


def test_cli_summary_and_list(capsys):
    assert main(["summary", "D", "--image-size", "32", "--width", "0.25", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("layer,kind,output_shape")
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "138357544" in out and "15.47" in out


@pytest.mark.parametrize("argv,match", [
    (["summary", "vgg17"], "unknown architecture 'vgg17'"),
    (["summary", "A", "--image-size", "20"], "at least 32"),
    (["summary", "A", "--head", "max"], "unknown head"),
])
def test_cli_errors_are_one_line(argv, match, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_summary_builds_the_structure_without_initialising_it(monkeypatch):
    """A summary (and a report's paper table of six of them) needs shapes only: initialising meta tensors does no
    arithmetic but runs torch's Python decompositions, whose first call imports torch._dynamo (about 1.3 s a
    process). Neither the summary nor from_torchvision's layout match initialises a network it only measures."""
    import torchvision

    from vggcore.model import network
    from vggcore.model.convert import from_torchvision

    def refuse(*args, **kwargs):
        raise AssertionError("initialised a network built for its structure only")

    monkeypatch.setattr(network, "init_weights", refuse)
    assert totals(summary("D"))["params"] == 138_357_544
    theirs = torchvision.models.vgg11(weights=None)   # initialised by torchvision itself, not by init_weights
    ours = from_torchvision(theirs)
    assert torch.equal(ours.features[0].weight, theirs.features[0].weight)
