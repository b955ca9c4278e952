"""What every command line promises: defaults in --help, no abbreviated options, nothing left behind by a
command refused before it started, and `./dev gpu-check` finding a Python that can run it."""

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ablations.cli
import reports.cli
import vggbench.cli
import vggcore.cli.main
import vggcore.cli.parser
from bench.sampling import MIN_ROUNDS

ROOT = Path(__file__).resolve().parents[1]
PARSERS = {"vggcore": vggcore.cli.main.parser, "ablations": ablations.cli.parser, "reports": reports.cli.parser,
           "vggbench": vggbench.cli.parser}


def every_parser():
    """(name, parser) for each CLI and each of its subcommands."""
    for name, make in PARSERS.items():
        stack = [(name, make())]
        while stack:
            label, p = stack.pop()
            yield label, p
            for action in p._actions:
                if isinstance(action, argparse._SubParsersAction):
                    stack += [(f"{label} {sub}", child) for sub, child in action.choices.items()]


ALL = dict(every_parser())


def test_every_subcommand_is_seen():
    assert {"vggcore train", "vggcore summary", "ablations run", "ablations status", "reports build",
            "reports compare", "vggbench demo", "vggbench gpu-check"} <= set(ALL)


@pytest.mark.parametrize("label", sorted(ALL))
def test_no_parser_takes_an_abbreviated_option(label):
    assert ALL[label].allow_abbrev is False


@pytest.mark.parametrize("label", sorted(ALL))
def test_help_shows_every_default(label):
    """Every option with a default other than None or False says it in --help."""
    text = " ".join(ALL[label].format_help().split())
    for action in ALL[label]._actions:
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS) \
                and action.default is not True:
            assert f"(default: {action.default})" in text, (label, action.option_strings)


def test_train_help_shows_the_training_defaults(capsys):
    with pytest.raises(SystemExit):
        vggcore.cli.main.main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split()).split(" options: ", 1)[1]
    for option, default in (("--batch-size", "64"), ("--width", "0.25"), ("--augment", "crop_flip"),
                            ("--epochs", "10"), ("--lr", "0.01"), ("--arch", "A"), ("--image-size", "32")):
        after = text.split(f"{option} {option[2:].upper().replace('-', '_')}", 1)[1]
        assert f"(default: {default})" in after.split(" --", 1)[0], option


@pytest.mark.parametrize("main,argv,short", [
    (ablations.cli.main, ["run", "S.toml", "--out", "o", "--worker", "2"], "--worker"),
    (ablations.cli.main, ["run", "S.toml", "--out", "o", "--until", "--quiet"], "--until"),
    (vggcore.cli.main.main, ["train", "--epoch", "1"], "--epoch"),
    (reports.cli.main, ["compare", "a.json", "b.json", "--thresh", "5%"], "--thresh"),
    (vggbench.cli.main, ["gpu-check", "--dry", "--out", "o"], "--dry"),
])
def test_an_abbreviated_option_is_refused(main, argv, short, capsys):
    """argparse used to take `--worker 2` for `--workers 2`, silently."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and f"unrecognized arguments: {short}" in capsys.readouterr().err


def test_reports_demo_says_where_it_moved(capsys):
    assert reports.cli.main(["demo", "--out", "x"]) == 2
    assert "python -m vggbench demo" in capsys.readouterr().err


# --------------------------------------------------------------------------------- nothing left behind
TRAIN = ["train", "--width", "0.125", "--image-size", "32", "--epochs", "1", "--quiet"]


@pytest.mark.skipif(sys.platform == "darwin", reason="mps may exist on macOS")
def test_train_refused_on_a_missing_device_leaves_no_folder(tmp_path, capsys):
    """The refusal comes from train() itself, after the folder's lock was taken (it used to stay, holding
    only `.lock`); the parents the command created go too."""
    out = tmp_path / "new" / "run"
    assert vggcore.cli.main.main([*TRAIN, "--device", "mps", "--out", str(out)]) == 2
    assert "device 'mps' is not available on this machine" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_train_on_a_missing_data_root_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert vggcore.cli.main.main([*TRAIN, "--dataset", "cifar10", "--data-root", str(tmp_path / "none"),
                             "--out", str(out)]) != 0
    assert "is not a directory" in capsys.readouterr().err
    assert not out.exists()


def test_an_existing_folder_is_kept_even_when_empty(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert vggcore.cli.main.main([*TRAIN, "--device", "mps", "--out", str(tmp_path / "run")]) == 2
    assert (tmp_path / "run").is_dir()


def test_a_study_refused_in_its_expansion_leaves_no_folder(tmp_path, capsys):
    """A combination of levels that no config accepts is found while the folder is locked."""
    study = tmp_path / "bad.toml"
    study.write_text('[study]\nname = "bad"\nseeds = [0]\n[base.train]\nbatch_size = 64\n[factors.mb]\n'
                     'levels.a = { "train.micro_batch" = 32 }\nlevels.b = { "train.micro_batch" = 128 }\n')
    assert ablations.cli.main(["run", str(study), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "micro_batch must be between 1 and batch_size (64), got 128" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------------ gpu-check
def test_gpu_check_help_promises_the_rounds_the_sampler_takes(capsys):
    with pytest.raises(SystemExit):
        vggbench.cli.main(["gpu-check", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"({MIN_ROUNDS} rounds at least" in text and "3 rounds" not in text
    source = (ROOT / "vggbench" / "gpu_check.py").read_text()
    assert "3 rounds" not in source and "MIN_ROUNDS" in source


def test_gpu_check_without_torch_says_so_in_one_line(tmp_path):
    # `python -m vggbench gpu-check` where `import torch` fails, as on a bare python3
    code = ("import runpy, sys; sys.modules['torch'] = None\n"
            f"sys.argv = ['vggbench', 'gpu-check', '--dry-run', '--out', {str(tmp_path / 'out')!r}]\n"
            "runpy.run_module('vggbench', run_name='__main__', alter_sys=True)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: torch is not importable by PYTHON={sys.executable}")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # no stage ran


@pytest.fixture
def dev_copy(tmp_path):
    """./dev in a folder of its own, with a stand-in venv Python that says who it is."""
    shutil.copy(ROOT / "dev", tmp_path / "dev")
    (tmp_path / "pyproject.toml").write_text("")
    fake = tmp_path / ".venv" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fake.write_text('#!/bin/sh\necho "venv python: $*"\n')
    fake.chmod(0o755)
    return tmp_path


def test_dev_gpu_check_runs_the_project_venv(dev_copy):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "VGGBENCH_VENV")}
    result = subprocess.run([str(dev_copy / "dev"), "gpu-check", "--dry-run"], capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 0 and result.stdout.strip() == "venv python: -m vggbench gpu-check --dry-run"


def test_dev_gpu_check_prefers_python_when_set(dev_copy):
    other = dev_copy / "other-python"
    other.write_text('#!/bin/sh\necho "PYTHON: $*"\n')
    other.chmod(0o755)
    result = subprocess.run([str(dev_copy / "dev"), "gpu-check"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHON": str(other)})
    assert result.stdout.strip() == "PYTHON: -m vggbench gpu-check"


def test_train_as_documented_with_its_progress_bar_finishes(tmp_path):
    """`python -m vggcore train` as docs/training.md shows it: no --quiet, so the bar is on to the end."""
    out = tmp_path / "t"
    result = subprocess.run([sys.executable, "-m", "vggcore", "train", "--epochs", "2", "--width", "0.125",
                             "--image-size", "32", "--out", str(out)],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    bar = result.stderr.replace("\r", "\n")
    assert "train A: 100%" in bar and "2/2" in bar, bar[-2000:]  # the bar reaches its total
    for figure in ("loss=", "val_err=", "lr="):  # and shows the figures it promises
        assert figure in bar, bar[-2000:]
    assert (out / "metrics.json").exists()
