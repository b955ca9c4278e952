"""`vggcore train --fast` (vggcore/train/fastest.py): the setting chosen by measurement on the device at hand, bf16 only
where its measured peak beats fp32's, and the choice recorded and kept by a resumed run."""

import json

import pytest
import torch

import vggcore.train.fastest
from vggcore import VGGConfig
from vggcore.cli.main import main
from vggcore.train.fastest import GIVE_UP, Choice, choose, step_timer

MODEL = VGGConfig("A", batch_norm=True, width=0.125, image_size=32, num_classes=10)


def scripted(step_ms: dict, peaks: dict):
    """A peak and a step timer that answer from tables, remembering what was asked."""
    asked = {"peak": [], "step": []}

    def peak(device, dtype):
        asked["peak"].append(dtype)
        return peaks[dtype]

    def time_step(dtype, channels_last, give_up_after):
        asked["step"].append((dtype, channels_last))
        seconds = step_ms[(dtype, channels_last)] / 1e3
        return seconds, seconds <= give_up_after
    return peak, time_step, asked


STEPS = {("fp32", False): 40.0, ("fp32", True): 25.0, ("bf16", False): 30.0, ("bf16", True): 15.0}


def test_bf16_is_not_timed_where_its_peak_is_below_fp32s():
    peak, time_step, asked = scripted(STEPS, {"fp32": 155e9, "bf16": 0.9e9})   # this AVX2-only CPU
    choice = choose(MODEL, 64, "cpu", peak=peak, time_step=time_step)
    assert asked["step"] == [("fp32", False), ("fp32", True)]
    assert (choice.bf16, choice.channels_last, choice.chosen) == (False, True, "fp32 channels_last")
    assert choice.skipped == {"bf16": "its measured matmul peak, 0.9 GFLOP/s, is below fp32's 155 GFLOP/s"}
    assert choice.line() == ("--fast chose fp32 channels_last on cpu (median step 25.0 ms; fp32 40.0 ms; bf16 not "
                             "timed: its measured matmul peak, 0.9 GFLOP/s, is below fp32's 155 GFLOP/s)")


def test_bf16_competes_where_its_peak_is_higher_and_the_fastest_wins():
    peak, time_step, asked = scripted(STEPS, {"fp32": 400e9, "bf16": 3300e9})   # an AMX CPU
    choice = choose(MODEL, 64, "cpu", peak=peak, time_step=time_step)
    assert len(asked["step"]) == 4 and choice.chosen == "bf16 channels_last" and choice.bf16
    assert choice.step_seconds == {"fp32": 0.04, "fp32 channels_last": 0.025, "bf16": 0.03,
                                   "bf16 channels_last": 0.015}
    record = choice.record()
    assert record["chosen"] == "bf16 channels_last" and record["peaks"] == {"fp32": 400e9, "bf16": 3300e9}


def test_a_candidate_far_slower_on_its_first_step_is_dropped():
    slow = {**STEPS, ("bf16", False): 25.0 * GIVE_UP + 1, ("bf16", True): 24.0}
    peak, time_step, _ = scripted(slow, {"fp32": 1e9, "bf16": 2e9})
    choice = choose(MODEL, 64, "cpu", peak=peak, time_step=time_step)
    assert "bf16" not in choice.step_seconds and "over 3x the best median so far (25.0 ms)" in choice.skipped["bf16"]
    assert choice.chosen == "bf16 channels_last"


def test_a_device_without_bf16_is_never_asked_for_its_bf16_peak():
    peak, time_step, asked = scripted(STEPS, {"fp32": 1e12})
    choice = choose(MODEL, 64, "mps", peak=peak, time_step=time_step)
    assert asked["peak"] == ["fp32"] and choice.skipped == {"bf16": "bf16 autocast is not supported on MPS"}


def test_the_step_timer_times_the_real_step_and_gives_up_when_told():
    time_one = step_timer(MODEL, 4, "cpu", steps=2)
    seconds, finished = time_one("fp32", True, float("inf"))
    assert finished and 0 < seconds < 60
    assert time_one("fp32", False, 0.0)[1] is False


def test_cli_records_the_choice_and_a_resumed_run_keeps_it(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_choose(model, batch_size, device):
        calls.append((model.num_classes, batch_size, device))
        return Choice(bf16=False, channels_last=True, step_seconds={"fp32": 0.02, "fp32 channels_last": 0.01},
                      peaks={"fp32": 1e11, "bf16": 1e9}, skipped={"bf16": "slow"}, device=device,
                      batch_size=batch_size, threads=torch.get_num_threads())

    monkeypatch.setattr(vggcore.train.fastest, "choose", fake_choose)
    out = tmp_path / "run"
    args = ["train", "--arch", "A", "--batch-norm", "--width", "0.0625", "--dataset", "synthetic", "--epochs", "1",
            "--batch-size", "128", "--fast", "--quiet", "--out", str(out)]   # 512 synthetic images, not digits
    assert main(args) == 0
    assert calls == [(10, 128, "cpu")] and "--fast chose fp32 channels_last" in capsys.readouterr().err
    assert json.loads((out / "fast.json").read_text())["chosen"] == "fp32 channels_last"
    assert json.loads((out / "metrics.json").read_text())["config"]["train"]["channels_last"] is True
    assert main(args) == 0   # the finished run, found again: no second measurement
    assert len(calls) == 1 and "keeping the setting this run chose before" in capsys.readouterr().err


@pytest.mark.parametrize("extra,env,match", [
    (["--bf16"], {}, "error: --fast chooses the dtype and memory format itself; drop --bf16 or drop --fast"),
    (["--channels-last"], {}, "drop --channels-last or drop --fast"),
    ([], {"RANK": "0"}, "error: --fast measures in one process, and under torchrun each rank could choose"),
])
def test_cli_refuses_fast_with_what_it_chooses(extra, env, match, monkeypatch, capsys):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["train", "--fast", "--epochs", "1", "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1
