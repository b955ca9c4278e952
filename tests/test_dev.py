"""`./dev test`: with no arguments ruff, the suite without the documented commands, then the documented commands,
each step's wall time on a line of its own and a failing step failing the whole; with arguments ruff and then
pytest with exactly those arguments. Run against a stand-in venv whose python logs what it is asked to run (the
real steps take many minutes; they are what CI runs)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$DEV_LOG"
case "$*" in
  *"-m ruff"*) exit "${RC_RUFF:-0}" ;;
  *"-m not commands"*) exit "${RC_SUITE:-0}" ;;
  *"-m commands"*) exit "${RC_COMMANDS:-0}" ;;
esac
"""


def dev_test(tmp_path, *args, **rcs):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    python = venv / "bin" / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    # the stamp ./dev writes after its set-up: with it, ./dev installs nothing
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + (ROOT / "dev").read_bytes()).hexdigest()
    (venv / ".vggbench-installed").write_text(want + "\n")
    log = tmp_path / "log"
    log.write_text("")
    env = {k: v for k, v in os.environ.items() if k not in ("VGGBENCH_SUITE_ARGS", "VGGBENCH_TEST_PROCESSES")}
    env.update(VGGBENCH_VENV=str(venv), DEV_LOG=str(log), **{k: str(v) for k, v in rcs.items()})
    done = subprocess.run([str(ROOT / "dev"), "test", *args], env=env, capture_output=True, text=True, timeout=60)
    return done, log.read_text().splitlines()


def test_no_arguments_runs_ruff_the_suite_and_the_commands_each_timed(tmp_path):
    done, calls = dev_test(tmp_path)
    assert done.returncode == 0, done.stderr
    assert calls == ["-m ruff check .", "-m pytest -n 2 --dist loadgroup -m not commands",
                     "-m pytest -n 2 --dist loadgroup -m commands"]
    assert re.findall(r"^== (\w+): \d+ s$", done.stdout, re.M) == ["ruff", "suite", "commands"]


def test_a_failing_step_fails_the_whole_and_the_later_steps_still_run(tmp_path):
    done, calls = dev_test(tmp_path, RC_SUITE=1)
    assert done.returncode == 1
    assert len(calls) == 3   # the commands step ran after the failed suite
    assert "== suite: " in done.stdout and "failed (exit 1)" in done.stdout
    done, calls = dev_test(tmp_path, RC_RUFF=1, RC_COMMANDS=2)
    assert done.returncode == 1   # the first failure's status
    assert re.search(r"^== commands: \d+ s, failed \(exit 2\)$", done.stdout, re.M)


def test_suite_args_reach_the_suite_step_only(tmp_path):
    venv_args = {"VGGBENCH_SUITE_ARGS": "--durations=25"}
    done, calls = dev_test(tmp_path, **venv_args)
    assert done.returncode == 0, done.stderr
    assert calls[1].endswith("-m not commands --durations=25") and "--durations" not in calls[2]


def test_arguments_go_to_pytest_exactly(tmp_path):
    done, calls = dev_test(tmp_path, "-m", "not slow", "tests/test_x.py")
    assert done.returncode == 0, done.stderr
    assert calls == ["-m ruff check .", "-m pytest -n 2 --dist loadgroup -m not slow tests/test_x.py"]
    assert "==" not in done.stdout
