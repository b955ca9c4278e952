"""The one error model at every command line: a UserError is one line and exit 2, Ctrl-C 130, and anything else
is a bug that keeps its traceback and says so."""

import errno
import importlib
import sys
from pathlib import Path

import pytest

import ablations.cli
import reports.cli
import vggbench.cli
import vggcore.cli.main
import vggcore.cli.parser
from vggcore.errors import BUG_LINE, EXIT_BUG, UserError, run_command

FIXTURES = Path(__file__).resolve().parent / "fixtures"
STUDY_FILE = FIXTURES / "study_5687e3f" / "fixture.toml"


def plant(exc):
    def raiser(*args, **kwargs):
        raise exc
    return raiser


# (CLI main, argv, what to break, where the command reaches it)
CLIS = {
    "vggcore": (vggcore.cli.main.main, ["list"], ("vggcore.model.summary", "totals")),
    "ablations": (ablations.cli.main, ["list", str(STUDY_FILE)], ("ablations.cli", "load_study")),
    "reports": (reports.cli.main, ["build", "--bench", str(FIXTURES / "bench_188a3a4.json"), "--out", "{tmp}"],
                ("reports.render", "build")),
    "gpu-check": (vggbench.cli.main, ["gpu-check", "--dry-run", "--out", "{tmp}"],
                  ("vggbench.gpu_check", "Check.main")),
}


def break_(monkeypatch, target, exc):
    module, attr = target
    importlib.import_module(module)
    owner = sys.modules[module]  # not getattr: `vggcore.model.summary` is also the name of a function
    *path, name = attr.split(".")
    for part in path:
        owner = getattr(owner, part)
    monkeypatch.setattr(owner, name, plant(exc))


@pytest.mark.parametrize("cli", CLIS)
def test_a_bug_keeps_its_traceback_and_says_it_is_a_bug(cli, monkeypatch, capsys, tmp_path):
    """A ValueError from deep inside (pandas, torch, our own code) is no user mistake: the old boundary printed
    `error: planted` and exited 2, and the traceback was lost."""
    main, argv, target = CLIS[cli]
    break_(monkeypatch, target, ValueError("planted inner failure"))
    assert main([a.replace("{tmp}", str(tmp_path / "out")) for a in argv]) == EXIT_BUG
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "ValueError: planted inner failure" in err
    assert err.strip().splitlines()[-1] == BUG_LINE
    assert "error: planted" not in err


@pytest.mark.parametrize("cli", CLIS)
def test_a_user_error_is_one_line_and_a_ctrl_c_130(cli, monkeypatch, capsys, tmp_path):
    main, argv, target = CLIS[cli]
    argv = [a.replace("{tmp}", str(tmp_path / "out")) for a in argv]
    break_(monkeypatch, target, UserError("the fix is to do X"))
    assert main(argv) == 2
    assert capsys.readouterr().err == "error: the fix is to do X\n"
    break_(monkeypatch, target, KeyboardInterrupt())
    assert main(argv) == 130
    assert "Traceback" not in capsys.readouterr().err


def test_the_boundary_uses_the_classes_exit_code(capsys):
    class Declined(UserError):
        exit_code = 5

    assert run_command(plant(Declined("no"))) == 5
    assert run_command(lambda: None) == 0 and run_command(lambda: 3) == 3
    with pytest.raises(SystemExit):  # argparse's own exits pass through
        run_command(plant(SystemExit(2)))
    assert capsys.readouterr().err == "error: no\n"


def test_an_oserror_from_inside_is_a_bug_too(monkeypatch, capsys):
    """The old ablations and reports boundaries took every OSError (and RuntimeError) for a user's mistake."""
    monkeypatch.setattr("ablations.cli.load_study", plant(OSError(errno.EIO, "Input/output error")))
    assert ablations.cli.main(["list", str(STUDY_FILE)]) == EXIT_BUG
    assert capsys.readouterr().err.strip().endswith(BUG_LINE)


def ablation_study(tmp_path, extra=""):
    path = tmp_path / "s.toml"
    path.write_text('[study]\nname = "s"\nseeds = [0]\n[base.model]\nwidth = 0.125\nimage_size = 32\n'
                    '[factors.d]\nlevels.on = { "model.dropout" = 0.5 }\nlevels.off = { "model.dropout" = 0.0 }\n'
                    + extra)
    return path


@pytest.mark.parametrize("case", ["ray missing", "out is a file", "status of no folder", "status of no study",
                                  "unwritable out", "declined prompt without a terminal", "compare without NEW",
                                  "reports input missing"])
def test_user_mistakes_are_user_errors(case, tmp_path, monkeypatch, capsys):
    """Mistakes that used to reach the boundary as builtin errors (RuntimeError, NotADirectoryError,
    FileNotFoundError, PermissionError, ValueError) are UserErrors now: one line, exit 2."""
    study = ablation_study(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    (tmp_path / "empty").mkdir()
    if case == "ray missing":
        monkeypatch.setitem(sys.modules, "ray", None)
        code = ablations.cli.main(["run", str(study), "--out", str(tmp_path / "o"), "--executor", "ray", "--quiet"])
        want = "the Ray executor needs Ray: pip install 'vggbench[ray]'"
    elif case == "out is a file":
        code = vggcore.cli.main.main(["train", "--out", str(blocker), "--quiet"])
        want = "is a file, not a folder"
    elif case == "status of no folder":
        code = ablations.cli.main(["status", str(tmp_path / "nothing")])
        want = "is not a study folder: no such folder"
    elif case == "status of no study":
        code = ablations.cli.main(["status", str(tmp_path / "empty")])
        want = "is not a study folder (it has no study.json)"
    elif case == "unwritable out":
        code = ablations.cli.main(["run", str(study), "--out", str(blocker / "sub"), "--quiet"])
        want = "cannot create study folder"
    elif case == "declined prompt without a terminal":
        monkeypatch.setattr(sys, "stdin", open("/dev/null"))
        code = ablations.cli.main(["run", str(study), "--out", str(tmp_path / "o"), "--confirm-above", "1"])
        want = "add --yes to start them"
    elif case == "compare without NEW":
        code = reports.cli.main(["compare", str(FIXTURES / "bench_188a3a4.json")])
        want = "compare needs OLD and NEW"
    else:
        code = reports.cli.main(["build", "--bench", str(tmp_path / "nope.json"), "--out", str(tmp_path / "r")])
        want = "nope.json does not exist"
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: ") and want in err[-1], err
    assert not any("Traceback" in line for line in err)
