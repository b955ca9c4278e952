"""Every long-running command with its progress bar on, as a user types it (a subprocess, no --quiet): the bar
reaches its total and shows the figures it promises. `vggcore train`'s bar: tests/test_cli.py; the
time-to-accuracy benchmark's: tests/test_user_paths.py (the batch-256 case); the demo's: its own test.

One tiny study (VGG-A at width 0.125, 32 px, one epoch, two runs) is trained once for the module: `ablations
run`'s bar is asserted on it, and `export`, `evaluate` and `reports build` read it."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tiny_study import tiny_study

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def bar_states(stderr: str, name: str) -> list[str]:
    """Every state the bar called `name` showed (tqdm rewrites its line with carriage returns)."""
    return [s for s in stderr.replace("\r", "\n").splitlines() if s.startswith(f"{name}:")]


def finished(stderr: str, name: str, total: int) -> str:
    """The bar's last state, asserted to be at its total."""
    states = bar_states(stderr, name)
    assert states, stderr[-3000:]
    last = states[-1]
    assert "100%" in last and f"{total}/{total}" in last, states
    return last


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("progress")
    toml = folder / "tiny.toml"
    toml.write_text(tiny_study())
    result = run("-m", "ablations", "run", str(toml), "--out", str(folder / "study"))
    return folder / "study", result


def test_a_study_run_shows_its_runs_done(study):
    _, result = study
    assert result.returncode == 0, result.stderr[-3000:]
    finished(result.stderr, "study tiny", 2)
    assert re.search(r"\[2/2\] \S+ seed 0: ok test_top1_error=0\.\d{4}", result.stdout), result.stdout


def test_export_shows_the_runs_written(study, tmp_path):
    folder, _ = study
    result = run("-m", "ablations", "export", str(folder), "--tensorboard", str(tmp_path / "tb"))
    assert result.returncode == 0, result.stderr[-3000:]
    last = finished(result.stderr, "export tensorboard", 2)
    assert "new=2" in last and "kept=0" in last, last


def test_a_multicrop_evaluation_shows_its_images_and_error(study):
    folder, _ = study
    (run_dir,) = [p.parent for p in (folder / "runs").glob("*/checkpoint.pt")][:1]
    result = run("-m", "vggcore", "evaluate", str(run_dir), "--protocol", "multicrop", "--crops", "2",
                 "--scales", "32")
    assert result.returncode == 0, result.stderr[-3000:]
    images = int(re.search(r"(\d+) test images", result.stdout).group(1))
    last = finished(result.stderr, "evaluate multicrop", images)
    error = float(re.search(r"top-1 error (\d\.\d{4})", result.stdout).group(1))
    assert "views=8" in last and f"top1_err={error:.4f}" in last, (last, result.stdout)   # 2x2 crops x 2 flips


def test_a_report_build_shows_its_sections(study, tmp_path):
    folder, _ = study
    result = run("-m", "reports", "build", "--ablations", str(folder), "--out", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr[-3000:]
    last = finished(result.stderr, "report", 6)
    figures = len(list((tmp_path / "report" / "figures").glob("*.png")))
    assert figures and f"figures={figures}" in last, last


def test_profile_shows_its_rounds_and_the_roofs_and_no_profiler_noise():
    """One warm-up pair, one round, the roofs; Kineto's USDT lines and failed GPU probe are not shown."""
    result = run("-m", "vggcore", "profile", "A", "--image-size", "32", "--width", "0.125", "--batch-size", "2",
                 "--rounds", "1", "--warmup", "1", "--mode", "forward")
    assert result.returncode == 0, result.stderr[-3000:]
    last = finished(result.stderr, "profile A", 3)
    assert "stage=roofs measured" in last and "rounds=1" in last, last
    for noise in ("USDT:", "gpuGetDeviceCount", "SyncActivityProfilerHandler"):
        assert noise not in result.stderr, result.stderr[-3000:]
    assert "roofs:" in result.stdout
