"""`python -m vggcore profile`: the per-layer table in every format, and one-line errors (exit 2) for bad input.
The roofs are stubbed (no timing here); the profile itself runs for real on a tiny VGG."""

import io
import json

import pandas as pd
import pytest
import torch

import vggcore.profile.profiler
from vggcore import VGGConfig
from vggcore.model.summary import summary
from vggcore.cli.main import main
from vggcore.profile.roofs import Roofs

TINY = ["A", "--image-size", "32", "--width", "0.125", "--batch-size", "2", "--num-classes", "10", "--rounds", "1",
        "--warmup", "0"]
LAYERS = list(summary(VGGConfig("A", image_size=32, width=0.125, num_classes=10), batch_size=2)["layer"])


@pytest.fixture(autouse=True)
def stub_roofs(monkeypatch):
    calls = []

    def roofs(device, dtype, **kw):
        calls.append((device, dtype))
        return Roofs(device=device, dtype=dtype, peak_flops=1e11, bandwidth=1e10)
    monkeypatch.setattr(vggcore.profile.profiler, "measure_roofs", roofs)
    return calls


def run(capsys, *args):
    code = main([*TINY, *args] if args[:1] != ("profile",) else list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_table_has_every_row_and_the_totals(capsys, stub_roofs):
    code, out, err = run(capsys, "profile", *TINY)
    assert code == 0, err
    assert stub_roofs == [("cpu", "fp32")]                       # measured in the run that uses them
    lines = out.splitlines()
    header = lines[0].split()
    assert header[:4] == ["layer", "kind", "pass", "time_ms"] and "of_bound" in header
    body = [line.split() for line in lines[1:] if line.strip() and not line.startswith(("step", "rows", "roofs",
                                                                                         "note", "ops"))]
    ops = [(row[0], row[2]) for row in body if row[1] != "cast"]
    assert ops == ([("zero_grad", "update")] + [(n, "forward") for n in LAYERS] + [("loss", "forward"),
                   ("loss", "backward")] + [(n, "backward") for n in reversed(LAYERS)]
                   + [("optimizer", "update"), ("unattributed", "step")])
    assert any(line.startswith("step (unprofiled, median of 1):") for line in lines)
    assert any(line.startswith("roofs: 100 GFLOP/s fp32 peak, 10 GB/s") and "SGD(foreach)" in line for line in lines)
    assert "profiling A train_step at batch 2, fp32 on cpu" in err
    ops = next(line for line in lines if line.startswith("ops with the most own time per step: "))
    assert "aten::" in ops and ops.count(";") == 5                            # the six ops with the most time


def test_csv_and_json_carry_every_column(capsys):
    code, out, _ = run(capsys, "profile", *TINY, "--mode", "forward", "--layers", "conv3x3", "--format", "csv")
    assert code == 0
    table = pd.read_csv(io.StringIO(out))
    assert set(table["kind"]) == {"conv3x3"} and set(table["pass"]) == {"forward"}
    assert {"time_s", "flops", "bytes", "intensity", "bound_time_s", "share_of_bound", "above_bound_s"} <= set(table)
    assert (table["flops"] > 0).all()
    code, out, _ = run(capsys, "profile", *TINY, "--optimizer", "fused", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["case"]["arch"] == "A" and data["case"]["optimizer"] == "SGD(fused)"
    assert data["case"]["mode"] == "train_step" and data["case"]["rounds"] == 1
    assert data["rows"][-1]["layer"] == "unattributed" and len(data["rows"]) > 2 * len(LAYERS)
    kernels = data["kernels"]
    assert [k["seconds"] for k in kernels] == sorted((k["seconds"] for k in kernels), reverse=True)
    assert any(k["op"].startswith("aten::_fused_sgd") for k in kernels)        # the fused SGD kernel ran


def test_markdown_bf16_channels_last(capsys):
    threads = torch.get_num_threads()
    code, out, err = run(capsys, "profile", *TINY, "--dtype", "bf16", "--channels-last", "--format", "markdown",
                         "--threads", "1")
    assert torch.get_num_threads() == threads   # the profile ran on --threads; the caller's count is back
    assert code == 0 and "threads: 1" in out + err
    assert out.startswith("| layer") and "| cast" in out and "bf16" in out


@pytest.mark.parametrize("args,message", [
    (["--dtype", "fp8"], "--dtype: unknown value 'fp8'; allowed: fp32, bf16, fp16"),
    (["--dtype", "fp16"], "fp16 autocast on CPU"),
    (["--mode", "inference"], "--mode: unknown value 'inference'; allowed: forward, forward_backward, train_step"),
    (["--layers", "conv5x5"], "layer filter: 'conv5x5' is no layer or kind of this profile"),
    (["--layers", ","], "--layers: empty"),
    (["--optimizer", "adam"], "--optimizer: unknown value 'adam'; allowed: for-loop, foreach, fused"),
    (["--optimizer", "fused", "--mode", "forward"], "--optimizer applies to --mode train_step only, not forward"),
    (["--batch-size", "0"], "--batch-size must be a positive integer, got '0'"),
    (["--width", "-1"], "--width must be a finite number > 0, got '-1'"),
    (["--rounds", "many"], "--rounds must be a positive integer, got 'many'"),
    (["--format", "xml"], "--format: unknown value 'xml'; allowed: table, csv, markdown, json"),
    (["--device", "mps"], "no MPS device times"),
    (["--image-size", "48"], "image_size must be a multiple of 32"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, args, message):
    code, out, err = run(capsys, "profile", *TINY, *args)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err, err
    assert len([line for line in err.splitlines() if not line.startswith("profiling ")]) == 1


def test_unknown_architecture_is_one_line(capsys):
    code, _, err = run(capsys, "profile", "Z", "--image-size", "32")
    assert code == 2 and err.splitlines() == [err.strip()] and "unknown architecture 'Z'" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_unavailable_cuda_is_one_line(capsys):
    code, _, err = run(capsys, "profile", *TINY, "--device", "cuda")
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("variable,value", [("VGGBENCH_PEAK_CALL_S", "soon"), ("VGGBENCH_TRIAD_BYTES", "0")])
def test_a_bad_measurement_setting_is_one_line_before_any_round(capsys, monkeypatch, variable, value):
    """The roofs come last, after every profiled round: their environment settings are judged first, so a typo
    costs no profiling (at 224 px the rounds take a minute)."""
    def refuse(*args, **kwargs):
        raise AssertionError("profiled before judging the settings")

    monkeypatch.setenv(variable, value)
    monkeypatch.setattr(vggcore.profile.profiler, "profile_step", refuse)
    code, out, err = run(capsys, "profile", *TINY)
    assert code == 2 and f"{variable}='{value}': expected" in err and "Traceback" not in err
