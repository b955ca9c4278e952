"""One owner per on-disk format, tested against files written by older code (tests/fixtures, see its README):
the run record (ablations.records), the study folder (ablations.store.Store: study.json, adaptive.json,
results.jsonl) and the benchmark JSON loader with its table of defaults (reports.load)."""

import errno
import json
import math
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from ablations import expand, load_study
from ablations.cli import main as ablations_main
from ablations.records import RunRecord
from ablations.store import Store, StoreError
from reports.bench_tables import fastest_display, fastest_with_speedup
from reports.readable import Flag
from reports.cli import main as reports_main
from reports.compare import compare
from reports.load import BENCH_DEFAULTS, load_ablations, load_bench

FIXTURES = Path(__file__).resolve().parent / "fixtures"
STUDY = FIXTURES / "study_5687e3f"
BENCH_NEW = FIXTURES / "bench_5687e3f.json"   # adaptive sampling: unstable, median_low/high, round_times
BENCH_OLD = FIXTURES / "bench_188a3a4.json"   # before it: none of those fields


@pytest.fixture
def folder(tmp_path):
    """A copy of the fixture study folder, so a test may damage it."""
    return Path(shutil.copytree(STUDY, tmp_path / "study"))


# ------------------------------------------------------------------------------------------ study folder
def test_the_fixture_folder_reads_through_the_store():
    store = Store(STUDY)
    manifest, plan = store.manifest(), store.plan()
    assert (manifest.study, manifest.metric, manifest.maximize, manifest.min_effect) == \
        ("fixture", "test_top1_error", False, 0.5)
    assert len(manifest.run_ids) == 6
    assert (plan.max_seeds, plan.initial_seeds, plan.looks, plan.alpha_per_look) == (3, 2, 2, 0.025)
    records = store.read().records
    assert Counter(r.status for r in records.values()) == {"ok": 3, "diverged": 3, "failed": 3}
    analysis = store.analysis()
    assert (analysis.min_effect, analysis.looks, analysis.alpha) == (0.5, 2, 0.025)


def test_the_fixture_study_still_expands_to_the_recorded_run_ids():
    """A folder started by older code resumes only while today's expansion gives its runs the same ids."""
    listed = Store(STUDY).manifest().run_ids
    assert sorted(r.run_id for r in expand(load_study(STUDY / "fixture.toml"))) == sorted(listed)


def test_status_of_the_fixture_folder(capsys):
    assert ablations_main(["status", str(STUDY)]) == 0
    out = capsys.readouterr().out
    assert "fixture: 9 runs (3 from added seeds): 3 done, 3 failed, 3 diverged, 0 remaining" in out
    assert out.count("failed: data=missing seed") == 3
    assert "seeds needed per variant to detect test_top1_error differences of 0.5" in out


def test_the_report_builds_from_the_fixtures(tmp_path, capsys):
    out = tmp_path / "report"
    assert reports_main(["build", "--bench", str(BENCH_NEW), str(BENCH_OLD), "--ablations", str(STUDY),
                         "--out", str(out)]) == 0
    abl = load_ablations([STUDY])
    assert abl.studies.set_index("study").loc["fixture", "alpha"] == 0.025  # adaptive.json's level per look
    effects = (out / "tables" / "effects.csv").read_text()
    assert "0.025" in effects and "fixture" in effects
    md = (out / "report.md").read_text()
    assert "## Benchmarks" in md and "## Ablations" in md and "failed and diverged runs" in md


@pytest.mark.parametrize("name,text", [("study.json", "{not json"), ("study.json", "[]"),
                                       ("study.json", '{"run_ids": []}'), ("adaptive.json", "{"),
                                       ("adaptive.json", '{"alpha": 0.05}')])
def test_a_corrupt_folder_file_is_one_line_naming_it(folder, capsys, tmp_path, name, text):
    (folder / name).write_text(text)
    assert ablations_main(["status", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {folder / name} is corrupt; cannot tell ") and len(err.splitlines()) == 1
    assert reports_main(["build", "--ablations", str(folder), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"{folder / name} is corrupt" in err and len(err.splitlines()) == 1


def test_a_changed_plan_is_refused_and_the_file_kept(folder):
    store = Store(folder)
    before = (folder / "adaptive.json").read_text()
    plan = store.plan()
    store.keep_plan(plan)  # the same plan: nothing to refuse
    with pytest.raises(StoreError, match="started --until-decided with max_seeds 3, min_effect 0.5"):
        store.keep_plan(type(plan)(min_effect=0.5, max_seeds=4, initial_seeds=2))
    assert (folder / "adaptive.json").read_text() == before


# ------------------------------------------------------------------------------------------- run records
def fixture_records():
    return [r.to_json() for r in Store(STUDY).read().records.values()]   # as the old code wrote them


def spec_of(record: dict):
    from ablations.study import RunSpec

    return RunSpec(record["run_id"], record["study"], record["variant"], record["levels"], record["seed"],
                   record["config"])


def test_every_constructor_writes_the_keys_the_old_records_have():
    """Readers of old folders and of new ones see one shape: a new record has every key an old one of its
    status had (it may add keys; readers use .get for those)."""
    by_status = {}
    for r in fixture_records():
        by_status.setdefault(r["status"], set()).update(r)
    ok = next(r for r in fixture_records() if r["status"] == "ok")
    result = {k: ok[k] for k in ("status", "error", "history", "final", "diverged_epoch", "provenance",
                                 "resumed_from_epoch", "world_size")}
    finished = RunRecord.finished(spec_of(ok), result, 0.0, 2).with_executor("local").to_json()
    assert by_status["ok"] - {"diverged_epoch"} <= set(finished)  # None is left out: "not diverged"
    assert "seed_scheme" not in finished  # a train() that does not say
    assert RunRecord.finished(spec_of(ok), {**result, "seed_scheme": "hash"}, 0.0, 2).seed_scheme == "hash"
    try:
        raise FileNotFoundError("data root /nonexistent/cifar is not a directory")
    except FileNotFoundError as err:
        failed = RunRecord.failed(spec_of(ok), err, 0.0, 2).with_executor("local").to_json()
    assert by_status["failed"] <= set(failed)
    assert failed["error"] == "FileNotFoundError: data root /nonexistent/cifar is not a directory"
    assert "Traceback" in failed["traceback"] and failed["final"] is None and failed["history"] == []


def test_a_dead_worker_and_a_failed_group_are_failed_records():
    run = spec_of(fixture_records()[0])
    killed = RunRecord.crashed_worker(run, -9, 0.0, 1).to_json()
    assert killed["status"] == "failed" and killed["exit_signal"] == "SIGKILL" and killed["exit_code"] == -9
    assert "killed by SIGKILL (signal 9)" in killed["error"] and "OOM killer" in killed["error"]
    exited = RunRecord.crashed_worker(run, 3, 0.0, 1).to_json()
    assert "exited with code 3" in exited["error"] and "exit_signal" not in exited
    group = RunRecord.failed_group(run, 2, RuntimeError("rank 1 died\nmore"), 0.0, 1).to_json()
    assert group["error"] == "data-parallel group of 2 failed: RuntimeError: rank 1 died"
    assert group["world_size"] == 2 and group["final"] is None


# ----------------------------------------------------------------------------------------- full disk
def test_a_results_append_on_a_full_disk_is_one_line_and_loses_nothing(folder, monkeypatch):
    store = Store(folder)
    record = RunRecord.crashed_worker(spec_of(fixture_records()[0]), -9, 0.0, 1)
    before = store.results_path.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StoreError, match=f"no space left on device writing {store.results_path}; free some space"):
        store.append(record)
    monkeypatch.undo()
    assert store.results_path.read_bytes() == before  # no half line left for the next append to trip on
    store.append(record)
    lines = store.results_path.read_bytes().splitlines()
    assert len(lines) == len(before.splitlines()) + 1 and json.loads(lines[-1]) == record.to_json()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_results_file_on_a_device_that_is_full(tmp_path):
    (tmp_path / "out").mkdir()
    os.symlink("/dev/full", tmp_path / "out" / "results.jsonl")  # every write: ENOSPC, as on a full disk
    store = Store(tmp_path / "out")
    with pytest.raises(StoreError, match="no space left on device writing .*results.jsonl"):
        store.append(RunRecord.crashed_worker(spec_of(fixture_records()[0]), -9, 0.0, 1))


def test_a_study_json_write_on_a_full_disk_is_one_line(tmp_path, monkeypatch):
    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("ablations.store.save_json", full)
    study = load_study(STUDY / "fixture.toml")
    store = Store(tmp_path / "out")
    with pytest.raises(StoreError, match=f"no space left on device writing {store.manifest_path}"):
        store.check_manifest(study, expand(study))


# ------------------------------------------------------------------------------------- benchmark JSON
def test_an_old_bench_file_gets_the_defaults():
    frame = load_bench([BENCH_OLD])
    extra = json.loads(BENCH_OLD.read_text())["benchmarks"][0]["extra_info"]
    assert not {"unstable", "median_low", "round_times"} & set(extra)  # the fixture is what it claims
    assert set(BENCH_DEFAULTS) <= set(frame.columns)
    row = frame.iloc[0]
    assert frame["unstable"].dtype == bool and not row["unstable"] and row["unstable_reason"] == ""
    assert math.isnan(row["median_low"]) and math.isnan(row["median_high"]) and math.isnan(row["world_size"])
    assert row["round_times"] is None


def test_old_and_new_files_together_keep_each_ones_values():
    frame = load_bench([BENCH_OLD, BENCH_NEW]).set_index("file")
    assert frame["unstable"].dtype == bool
    assert not frame.loc[str(BENCH_OLD), "unstable"]
    new = frame.loc[[str(BENCH_NEW)]]
    assert new["unstable"].all() and new["unstable_reason"].str.len().gt(0).all()
    assert new["round_times"].map(len).ge(6).all() and new["median_low"].notna().all()
    # the gate compares a file without round times (IQR) with one that kept them
    table = compare([BENCH_OLD], [BENCH_NEW], 0.05)
    shared = table[table["runs_old"].gt(0) & table["runs_new"].gt(0)]
    assert len(shared) == 1 and shared["high"].iloc[0] > shared["low"].iloc[0]


def test_the_fastest_setting_of_an_unstable_case_is_marked_unstable():
    """Every case of the fixture is unstable: the headline table must say so (it tested `is True` on a numpy
    bool, so it never did)."""
    bench = load_bench([BENCH_NEW])
    assert bench["unstable"].all()
    table = fastest_with_speedup(bench)
    assert table["unstable"].tolist() == [True]
    flag = fastest_display(table)["stability"].iloc[0]
    assert isinstance(flag, Flag) and flag.text == "unstable" and flag.reason == table["unstable_reason"].iloc[0] != ""


def test_a_run_that_finds_the_disk_full_stops_the_study_unrecorded(tmp_path, monkeypatch):
    """Every next run would fail alike: the driver stops at the first, records no failure (the same command
    resumes it from its checkpoint), and says why in one line."""
    from ablations.runner import RunOptions, run_study

    calls = []

    def full(*args, **kwargs):
        calls.append(1)
        raise OSError(errno.ENOSPC, "No space left on device: checkpoint.pt")

    monkeypatch.setattr("vggcore.train.loop.train", full)
    path = tmp_path / "s.toml"
    path.write_text('[study]\nname = "s"\nseeds = [0]\n[factors.d]\nlevels.on = { "model.dropout" = 0.5 }\n'
                    'levels.off = { "model.dropout" = 0.0 }\n')
    store = Store(tmp_path / "out")
    with pytest.raises(StoreError, match=r"the study stopped at baseline seed 0, which found no space left on the "
                                         r"disk \(OSError: \[Errno 28\] No space left on device: checkpoint.pt\)"):
        run_study(load_study(path), store, RunOptions(progress=False), report=lambda line: None)
    assert calls == [1] and store.read().records == {}
    assert store.manifest() is not None  # the folder says which study it holds; the rerun resumes


# ------------------------------------------------------------------------- valid JSON of the wrong shape
@pytest.mark.parametrize("line", ['{"run_id": "x"}', '{"run_id": "x", "study": "fixture", "final": []}',
                                  '{"run_id": 3, "study": "fixture"}', '[1, 2]', '"text"',
                                  '{"run_id": "x", "study": "fixture", "timing": [], "status": "ok"}',
                                  '{"run_id": "x", "study": "fixture", "history": [1]}'])
def test_a_results_line_that_is_no_record_is_skipped_as_corrupt(folder, capsys, tmp_path, line):
    with open(folder / "results.jsonl", "a") as f:
        f.write(line + "\n")
    parsed = Store(folder).read(warn=False)
    assert parsed.corrupt_lines == [10] and len(parsed.records) == 9
    assert ablations_main(["status", str(folder)]) == 0
    assert "skipped 1 corrupt line(s) (10)" in capsys.readouterr().err
    assert reports_main(["build", "--ablations", str(folder), "--out", str(tmp_path / "r")]) == 0


@pytest.mark.parametrize("change", [
    lambda d: d.update(machine_info=[]), lambda d: d.update(commit_info="x"),
    lambda d: d["benchmarks"].append(3), lambda d: d["benchmarks"][0].update(stats=[]),
    lambda d: d["benchmarks"][0].update(extra_info="x"), lambda d: d["machine_info"].update(cpu=[]),
])
def test_a_bench_file_with_a_member_of_the_wrong_type_is_one_line(tmp_path, capsys, change):
    data = json.loads(BENCH_OLD.read_text())
    change(data)
    (tmp_path / "b.json").write_text(json.dumps(data))
    assert reports_main(["build", "--bench", str(tmp_path / "b.json"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "b.json is not a pytest-benchmark JSON file" in err and len(err.splitlines()) == 1


def test_a_lock_file_of_another_shape_names_no_holder(tmp_path):
    from vggcore.lock import LOCK_FILE, describe_holder

    (tmp_path / LOCK_FILE).write_text("[1, 2]\n")
    assert describe_holder(tmp_path) == "another process (pid unknown)"
