"""Misuse a real user commits: two launches on one folder, a kill at any moment, Ctrl-C, a dead worker, a huge
design, a file where a folder belongs, a group-shared umask."""

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ablations.cli import main as ablations_main
from ablations.store import Store
from vggcore.cli.main import main as vggcore_main
from vggcore.lock import folder_lock
from tiny_study import BROKEN, tiny_study
from json_records import json_records

# What these tests show is a lock, a kill, a file mode or an exit code, not learning: their runs train on random
# images (the CLI's 512, the studies' 64: one batch an epoch), a fraction of the digits' time.
TRAIN = ["train", "--arch", "A", "--batch-norm", "--width", "0.125", "--image-size", "32", "--augment", "none",
         "--batch-size", "128", "--dataset", "synthetic", "--quiet"]
SMALL = 'dataset = "synthetic"\nsynthetic_samples = 64\n'


def write(tmp_path, seeds="[0]", epochs=1, extra="", name="tiny.toml"):
    path = tmp_path / name
    path.write_text(tiny_study(seeds=seeds, epochs=epochs, extra=extra, data=SMALL))
    return path


def ablations(*args):
    return [sys.executable, "-m", "ablations", *args]


def vggcore(*args):
    return [sys.executable, "-m", "vggcore", *args]


def wait_for(condition, timeout=180.0):
    """The condition's first true value, polled every 50 ms."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for the child process")


def locked(folder: Path) -> bool:
    lock = folder / ".lock"
    return lock.exists() and lock.read_text().strip() != ""


def holder_pid(folder: Path) -> int | None:
    """The pid that the lock of `folder` names while it is held."""
    try:
        return json.loads((folder / ".lock").read_text())["pid"]
    except (OSError, ValueError, KeyError):
        return None


class paused:
    """The process stopped (SIGSTOP) for the `with` block: it holds what it holds, however fast its work would end,
    so a second launch meets it in use on any machine."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def __enter__(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def __exit__(self, *exc) -> None:
        os.kill(self.pid, signal.SIGCONT)


def sigint_default():
    # A shell that starts CI in the background hands its children an ignored SIGINT; restore the default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def _workers(pid: int) -> list[int]:
    out = []
    for child in _children(pid):
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmd or b"ablations.workers" in cmd:
            out.append(child)
    return out


linux_only = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")


# ------------------------------------------------------------------------------------------------- the lock
def test_folder_lock_refuses_a_second_process_and_names_the_holder(tmp_path):
    with folder_lock(tmp_path / "d"):
        with folder_lock(tmp_path / "d"):  # re-entrant within this process
            pass
        code = ("import sys; from vggcore.lock import folder_lock\n"
                "try:\n    folder_lock(sys.argv[1]).__enter__()\n"
                "except ValueError as e:\n    print(e); sys.exit(7)\n")
        other = subprocess.run([sys.executable, "-c", code, str(tmp_path / "d")], capture_output=True, text=True,
                               timeout=120)
        assert other.returncode == 7, other.stderr
        assert f"is in use by pid {os.getpid()} on host {socket.gethostname()}" in other.stdout
    # released: the next holder gets it
    with folder_lock(tmp_path / "d"):
        pass


def test_lock_on_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        with folder_lock(tmp_path / "f"):
            pass


@pytest.mark.slow
def test_double_launch_of_a_study_is_refused_with_no_duplicates(tmp_path):
    # Both drivers start at once, as two shells would: whichever reaches the folder first runs the study, the
    # other is refused. (Starting the second only after the first is seen working races with a study that
    # finishes before a loaded machine has imported torch in the second.) The holder is paused until the other
    # has its answer, so the tiny study cannot end before the other driver reaches the folder.
    path, out = write(tmp_path), tmp_path / "out"
    drivers = [subprocess.Popen(ablations("run", str(path), "--out", str(out), "--quiet"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    holder = wait_for(lambda: holder_pid(out))
    assert holder in [d.pid for d in drivers]
    answers = {}
    with paused(holder):
        answers.update({d.pid: d.communicate(timeout=300) for d in drivers if d.pid != holder})
    answers.update({d.pid: d.communicate(timeout=300) for d in drivers if d.pid == holder})
    results = [(d, *answers[d.pid]) for d in drivers]
    ran = [r for r in results if r[0].returncode == 0]
    refused = [r for r in results if r[0].returncode == 2]
    assert len(ran) == 1 and len(refused) == 1, [(d.returncode, err) for d, _, err in results]
    err = refused[0][2]
    assert f"is in use by pid {ran[0][0].pid} on host {socket.gethostname()}" in err
    assert len(err.strip().splitlines()) == 1
    ids = [json.loads(line)["run_id"] for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(ids) == 2 and len(set(ids)) == 2


@pytest.mark.slow
def test_double_launch_of_train_is_refused_and_nothing_is_overwritten(tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen(vggcore(*TRAIN, "--epochs", "1", "--lr", "0.05", "--out", str(out)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: holder_pid(out) == first.pid or first.poll() is not None)
    with paused(first.pid):  # still training when the second arrives, on any machine
        second = subprocess.run(vggcore(*TRAIN, "--epochs", "1", "--lr", "0.01", "--out", str(out)),
                                capture_output=True, text=True, timeout=300)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 2 and f"is in use by pid {first.pid}" in second.stderr, second.stderr
    assert "Traceback" not in second.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["config"]["train"]["lr"] == 0.05


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@linux_only
@pytest.mark.slow
def test_sigkill_of_the_lock_holder_then_a_new_launch_proceeds(tmp_path):
    path, out = write(tmp_path), tmp_path / "out"
    first = subprocess.Popen(ablations("run", str(path), "--out", str(out), "--quiet", "--workers", "2"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: locked(out) and len(_workers(first.pid)) == 2)
    workers = _workers(first.pid)
    first.kill()
    first.wait()
    wait_for(lambda: not any(_alive(w) for w in workers), timeout=30)  # no orphan goes on training
    again = subprocess.run(ablations("run", str(path), "--out", str(out), "--quiet"), capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 2 and len(json_records(out / "results.jsonl")) == 2


def test_write_probe_does_not_collide_with_another_process(tmp_path):
    # Another process's probe of the same fixed name (here: left as a folder) must not make a writable folder
    # look unwritable.
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".write-test").mkdir()
    Store(tmp_path / "out").prepare()


# ----------------------------------------------------------------------------------------- vggcore train
def test_train_out_an_existing_file_fails_before_training(tmp_path, capsys, monkeypatch):
    import vggcore.train.loop

    def no_training(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(vggcore.train.loop, "train", no_training)   # the command imports it when it runs
    target = tmp_path / "file"
    target.write_text("keep me")
    assert vggcore_main([*TRAIN, "--epochs", "1", "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and len(err.strip().splitlines()) == 1
    assert target.read_text() == "keep me"


@pytest.mark.slow
def test_ctrl_c_of_train_says_how_to_resume(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(vggcore(*TRAIN, "--epochs", "20", "--out", str(out)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)
    wait_for(lambda: (out / "checkpoint.pt").exists() or proc.poll() is not None)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "run the same command again to resume" in err and str(out) in err and "Traceback" not in err


@pytest.fixture(scope="module")
def recorded_study(tmp_path_factory):
    """One tiny study run under a group-shared umask (002) with no terminal, above a --confirm-above of 1 with
    --yes: the file-mode test reads its files, the estimate test what it said and the times it recorded.
    Returns (the study's folder, --out, exit code, stderr)."""
    import contextlib
    import io

    folder = tmp_path_factory.mktemp("recorded")
    path, out, err, stdin = write(folder), folder / "out", io.StringIO(), sys.stdin
    old = os.umask(0o002)
    try:
        sys.stdin = open(os.devnull)
        with contextlib.redirect_stderr(err):
            code = ablations_main(["run", str(path), "--out", str(out), "--quiet", "--confirm-above", "1", "--yes"])
    finally:
        os.umask(old)
        sys.stdin.close()
        sys.stdin = stdin
    return folder, out, code, err.getvalue()


@pytest.mark.xdist_group("recorded_study")  # one run of the shared study under `-n 2 --dist loadgroup`
def test_files_follow_the_umask(recorded_study):
    folder, out, code, err = recorded_study
    assert code == 0, err
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"results.jsonl", "study.json", "checkpoint.pt", "metrics.json"}
    modes = {str(p.relative_to(folder)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert set(modes.values()) == {"0o664"}, modes
    dirs = [p for p in out.rglob("*") if p.is_dir()]
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in dirs} == {"0o775"}


# --------------------------------------------------------------------------------------- exit codes, size
def test_failed_runs_exit_3_and_are_listed_with_the_retry_hint(tmp_path, capsys):
    path = write(tmp_path, extra=BROKEN.replace('"data.dataset" = "digits"', '"data.dataset" = "synthetic"'))
    path.write_text(path.read_text().replace("[factors.dropout]\nlevels.on = { \"model.dropout\" = 0.5 }\n"
                                             "levels.off = { \"model.dropout\" = 0.0 }\n", ""))
    assert ablations_main(["run", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 3
    out = capsys.readouterr()
    text = out.out + out.err
    assert "failed: data=missing seed 0" in text and "--retry-failed" in text
    # again: nothing runs, the failure is still there, still 3
    assert ablations_main(["run", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 3


def test_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        ablations_main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for line in ("0 every run finished (ok or diverged", "1 you answered no", "2 a usage error",
                 "3 some runs failed", "130 interrupted", "--yes", "--confirm-above"):
        assert line in text


def big_study(tmp_path, seeds=1001):
    return write(tmp_path, seeds=json.dumps(list(range(seeds))), name="big.toml")


def test_large_design_needs_yes_without_a_tty(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", open(os.devnull))
    path = big_study(tmp_path)
    assert ablations_main(["list", str(path)]) == 0
    out = capsys.readouterr().out
    assert "2,002 runs" in out and "no estimate yet" in out
    assert ablations_main(["run", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    plan, error = capsys.readouterr().err.strip().splitlines()  # what it would do, then the one-line refusal
    assert "2,002 to run: no estimate yet" in plan
    assert error.startswith("error: ") and "2,002 runs to run" in error and "add --yes" in error
    assert not (tmp_path / "o" / "results.jsonl").exists()


def test_large_design_prompt_on_a_tty(tmp_path, capsys, monkeypatch):
    class Tty:
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdin", Tty())
    answers = iter(["n"])
    monkeypatch.setattr("builtins.input", lambda prompt="": (print(prompt, end=""), next(answers))[1])
    path = big_study(tmp_path)
    assert ablations_main(["run", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 1
    assert "run 2,002 runs?" in capsys.readouterr().out.lower()
    assert not (tmp_path / "o" / "results.jsonl").exists()
    # a lower threshold applies to small studies too
    small = write(tmp_path, seeds="[0]")
    answers = iter(["no"])
    assert ablations_main(["run", str(small), "--out", str(tmp_path / "s"), "--confirm-above", "1"]) == 1
    assert "run 2 runs?" in capsys.readouterr().out.lower()


@pytest.mark.xdist_group("recorded_study")
def test_estimate_comes_from_recorded_runs(recorded_study, tmp_path, capsys):
    _, out, code, err = recorded_study
    # above the threshold with no terminal: --yes started it
    assert code == 0 and "no estimate yet" in err, err
    seconds = [r["timing"]["seconds"] for r in json_records(out / "results.jsonl").values()]
    mean = sum(seconds) / len(seconds)
    bigger = write(tmp_path, seeds="[0, 1, 2]")
    assert ablations_main(["list", str(bigger), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    # 6 runs, 2 recorded: 4 to go at the recorded mean
    assert f"4 to run: about {4 * mean:.0f} s" in text and f"{mean:.1f} s per run over 2 recorded" in text


# --------------------------------------------------------------------------------------------- workers
@linux_only
@pytest.mark.slow
def test_a_killed_worker_fails_its_run_and_the_study_goes_on(tmp_path):
    path, out = write(tmp_path, seeds="[0, 1]", epochs=3), tmp_path / "out"
    proc = subprocess.Popen(ablations("run", str(path), "--out", str(out), "--quiet", "--workers", "2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: len(list(out.glob("runs/*/checkpoint.pt"))) >= 1 or proc.poll() is not None)
    victims = _workers(proc.pid)
    assert victims, "no worker process found"
    os.kill(victims[0], signal.SIGKILL)
    stdout, err = proc.communicate(timeout=600)
    assert proc.returncode == 3, err
    assert "Traceback" not in err and "BrokenProcessPool" not in err
    records = json_records(out / "results.jsonl")
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(records) == 4 and len(lines) == 4
    failed = [r for r in records.values() if r["status"] == "failed"]
    assert len(failed) == 1 and "SIGKILL" in failed[0]["error"] and failed[0]["exit_signal"] == "SIGKILL"
    assert sorted(r["status"] for r in records.values()) == ["failed", "ok", "ok", "ok"]
    again = subprocess.run(ablations("run", str(path), "--out", str(out), "--quiet", "--retry-failed"),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    records = json_records(out / "results.jsonl")
    assert sorted(r["status"] for r in records.values()) == ["ok"] * 4


@linux_only
@pytest.mark.slow
def test_ctrl_c_with_workers_is_quiet(tmp_path):
    # 10 epochs a run: Ctrl-C comes after the first checkpoint, long before the study could end (unrun epochs cost
    # nothing)
    path, out = write(tmp_path, seeds="[0, 1]", epochs=10), tmp_path / "out"
    proc = subprocess.Popen(ablations("run", str(path), "--out", str(out), "--quiet", "--workers", "2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=sigint_default)
    wait_for(lambda: len(list(out.glob("runs/*/checkpoint.pt"))) >= 1 or proc.poll() is not None)
    workers = _workers(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err and "OSError" not in err, err
    assert workers and not any(Path(f"/proc/{w}").exists() for w in workers)


def test_lock_is_not_kept_alive_by_forked_children(tmp_path):
    """A SIGKILLed holder's forked children (DataLoader workers, say) outlive it for a while: they must not keep
    the folder locked, or the user's immediate rerun is refused on behalf of a dead process."""
    code = ("import os, sys, time\n"
            "from vggcore.lock import folder_lock\n"
            "with folder_lock(sys.argv[1]):\n"
            "    child = os.fork()\n"
            "    if child == 0:\n"
            "        time.sleep(60)\n"
            "        os._exit(0)\n"
            "    print(child, flush=True)\n"
            "    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "d")], stdout=subprocess.PIPE, text=True)
    child = int(holder.stdout.readline())
    try:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        with folder_lock(tmp_path / "d"):  # the child still runs, the lock is free
            os.kill(child, 0)
    finally:
        os.kill(child, signal.SIGKILL)
        holder.stdout.close()
