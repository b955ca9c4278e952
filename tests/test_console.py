"""The `vggbench` console command: one command with a subcommand for every job, the `python -m` forms beside it,
and light commands that stay light (no torch, no torchvision) so they start in well under a second."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tiny_study import tiny_study

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_STUDY = ROOT / "tests" / "fixtures" / "study_5687e3f"
HEAVY = ("torch", "torchvision")

# Every command a user reaches through `vggbench`, as its argv (their --help is checked, and the light ones run).
COMMANDS = [[], ["demo"], ["list"], ["summary"], ["train"], ["evaluate"], ["profile"], ["study"], ["study", "run"],
            ["study", "list"], ["study", "status"], ["study", "export"], ["report"], ["report", "build"],
            ["report", "compare"], ["gpu-check"]]


def loaded_after(argv: list[str]) -> tuple[int, set[str], str]:
    """Run `vggbench ARGV` in a fresh interpreter: (exit code, heavy modules it imported, its output)."""
    code = ("import json, sys\nfrom vggbench.cli import main\n"
            f"try:\n    rc = main({argv!r})\nexcept SystemExit as e:\n    rc = e.code\n"
            "print(json.dumps({'rc': rc, 'heavy': [m for m in " + repr(HEAVY) + " if m in sys.modules]}))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    last = result.stdout.strip().splitlines()[-1]
    report = json.loads(last)
    return report["rc"], set(report["heavy"]), result.stdout + result.stderr


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a) or "vggbench")
def test_every_help_is_light(argv):
    rc, heavy, out = loaded_after(argv + ["--help"])
    assert rc == 0 and "usage: vggbench" in out
    assert heavy == set(), f"vggbench {' '.join(argv)} --help imported {heavy}"


def test_study_list_and_status_read_a_study_without_torch(tmp_path):
    study = tmp_path / "tiny.toml"
    study.write_text(tiny_study(seeds="[0, 1]"))
    rc, heavy, out = loaded_after(["study", "list", str(study)])
    assert rc in (0, None) and heavy == set() and "4 runs" in out
    folder = tmp_path / "study"
    shutil.copytree(FIXTURE_STUDY, folder)
    rc, heavy, out = loaded_after(["study", "status", str(folder)])
    assert rc == 0 and heavy == set()
    assert "done" in out


def test_the_console_script_is_installed_and_runs_a_subcommand():
    """`pip install -e .` (./dev setup) puts `vggbench` beside the venv's python."""
    script = Path(sys.executable).with_name("vggbench")
    if not script.exists():
        pytest.skip(f"no {script}: this Python's environment has not installed the project (pip install -e .)")
    result = subprocess.run([str(script), "study", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "usage: vggbench study" in result.stdout


def test_the_python_m_forms_run_the_same_commands():
    for module, argv in (("vggcore", ["list", "--help"]), ("ablations", ["status", "--help"]),
                         ("reports", ["build", "--help"]), ("vggbench", ["study", "status", "--help"])):
        result = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, timeout=120,
                                cwd=ROOT)
        assert result.returncode == 0 and "usage:" in result.stdout, (module, result.stderr)


def test_a_command_that_needs_torch_says_so_in_one_line_without_it(tmp_path):
    code = ("import sys; sys.modules['torch'] = None\nfrom vggbench.cli import main\n"
            f"raise SystemExit(main(['train', '--out', {str(tmp_path / 'run')!r}]))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 2 and result.stderr.startswith("error: torch is not importable")
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
