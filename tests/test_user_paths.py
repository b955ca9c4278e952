"""The defects issue 28's walk through the docs found, each through the command a user types: in a subprocess,
progress bars on, no --quiet."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The single line a user mistake prints (exit 2, no traceback)."""
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


# ------------------------------------------------------------------------------- time to accuracy at batch 256
def test_time_to_accuracy_with_fewer_than_nine_batches_keeps_every_figure(tmp_path):
    """Digits' 1,257 training images at batch 256 are 5 batches an epoch: the per-step loop cost (8 timed steps
    and one untimed) used to run out of batches after the timed runs and lose them (StopIteration)."""
    out = tmp_path / "tta.json"
    result = run("-m", "pytest", "bench", "--benchmark-only", "-p", "no:cacheprovider",
                 "--vgg-modes", "time_to_accuracy", "--vgg-batch-sizes", "256", "--vgg-width", "0.0625",
                 "--vgg-tta-seeds", "1", "--vgg-tta-epochs", "1", "--vgg-target", "20%",
                 "--vgg-tta-recipe", "augment=none", f"--benchmark-json={out}")
    assert result.returncode == 0, result.stdout[-3000:]
    (case,) = json.loads(out.read_text())["benchmarks"]
    info = case["extra_info"]
    assert info["batch_size"] == 256 and len(info["curves"]) == 1 and case["stats"]["rounds"] == 1
    cost = info["loop_cost"]
    assert cost["steps_timed"] == 8 and cost["step_epochs"] == 2   # 9 draws from 5 batches an epoch
    for part in ("step_data_s", "step_forward_backward_s", "step_optimizer_s", "step_loop_overhead_s"):
        assert cost[part] > 0
    assert cost["step_s"] == cost["step_data_s"] + cost["step_forward_backward_s"] + cost["step_optimizer_s"]
    # and its progress: the case's bar over epochs reaches its total with the figures it promises
    bar = result.stderr.replace("\r", "\n")
    assert "A_bn-digits-cpu-fp32-32px-w0.0625-b256-to20" in bar and "2/2" in bar, bar[-2000:]
    for figure in ("run=", "val_acc="):
        assert figure in bar, bar[-2000:]
# ------------------------------------------------------------------------------- A/B: terminal and report
def test_the_ab_ratio_and_its_interval_are_in_the_terminal_and_the_report(tmp_path):
    """docs/profile.md's A/B table (A median, B median, speed of A over B [95%]) from either the pytest run's
    terminal summary or the report, not only the JSON."""
    out = tmp_path / "ab.json"
    result = run("-m", "pytest", "bench", "--benchmark-only", "-p", "no:cacheprovider", "--vgg-archs", "A",
                 "--vgg-batch-sizes", "1", "--vgg-modes", "train_step", "--vgg-image-size", "32", "--vgg-width",
                 "0.125", "--vgg-optimizer", "for-loop", "--vgg-ab-against", "optimizer=foreach", "--vgg-max-time",
                 "0.5", f"--benchmark-json={out}", "-k", "test_ab_interleaved")   # -k: not the grid's own case
    assert result.returncode == 0, result.stdout[-3000:]
    (ab,) = [b for b in json.loads(out.read_text())["benchmarks"] if "a_over_b_speed" in b["extra_info"]]
    info = ab["extra_info"]
    speed = f"{info['a_over_b_speed']:.3f}x [{info['a_over_b_speed_low']:.3f}, {info['a_over_b_speed_high']:.3f}]"
    lines = [line for line in result.stdout.splitlines() if "against optimizer=foreach" in line and speed in line]
    assert len(lines) == 1, result.stdout[-3000:]
    assert f"A median {info['a_median_s'] * 1e3:.4g} ms" in lines[0] and \
        f"B median {info['b_median_s'] * 1e3:.4g} ms" in lines[0], lines[0]

    report = tmp_path / "report"
    built = run("-m", "reports", "build", "--bench", str(out), "--out", str(report))
    assert built.returncode == 0, built.stderr[-3000:]
    md = (report / "report.md").read_text()
    assert "A/B comparisons" in md and speed in md and "optimizer=foreach" in md, md[-3000:]
    table = (report / "tables" / "ab_comparisons.csv").read_text().splitlines()
    assert len(table) == 2 and "a_over_b_speed_low" in table[0], table


# ------------------------------------------------------------------------------- the demo's seed cap
def recorded_demo(folder: Path, cap: int) -> None:
    """A demo folder whose study has fixed its seed cap (adaptive.json), as a demo that got past its listed seeds
    leaves it; its benchmark stage done."""
    from ablations.adaptive import make_plan
    from ablations.store import Store
    from ablations.study import load_study
    from vggbench.demo import DEMO_STUDY

    Store(folder / "ablations").keep_plan(make_plan(load_study(DEMO_STUDY), max_seeds=cap))
    for name in ("bench.json", "bench-settings.json"):
        (folder / name).write_text(json.dumps({"machine_info": {}, "benchmarks": [{"name": "kept"}]}))


def test_another_seed_cap_on_a_demo_folder_is_refused_with_what_to_do(tmp_path):
    folder = tmp_path / "demo"
    recorded_demo(folder, cap=4)
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    line = one_error_line(run("-m", "vggbench", "demo", "--out", str(folder), "--max-seeds", "6", timeout=60))
    assert "seed cap 4" in line and "--max-seeds 6" in line and "without --max-seeds" in line and "--out" in line
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before   # nothing written


def test_the_same_seed_cap_or_none_resumes_a_demo_folder(tmp_path):
    from vggbench.demo import check_seed_cap

    folder = tmp_path / "demo"
    recorded_demo(folder, cap=4)
    assert check_seed_cap(folder, 4) is None and check_seed_cap(folder, None) is None
    assert check_seed_cap(tmp_path / "new", 6) is None    # a new folder takes any cap


# ------------------------------------------------------------------------------- export of the demo folder
def test_export_of_the_demo_folder_names_the_folder_that_holds_its_study(tmp_path):
    from ablations.store import Store
    from ablations.study import load_study
    from vggbench.demo import DEMO_STUDY

    study = load_study(DEMO_STUDY)
    Store(tmp_path / "demo" / "ablations").check_manifest(study, [])
    line = one_error_line(run("-m", "ablations", "export", str(tmp_path / "demo"), "--tensorboard",
                              str(tmp_path / "tb"), timeout=60))
    assert f"the study is in {tmp_path / 'demo' / 'ablations'}" in line, line
    assert f"python -m ablations export {tmp_path / 'demo' / 'ablations'}" in line, line
    assert not (tmp_path / "tb").exists()




# ------------------------------------------------------------------------------- a report built again
def test_a_report_built_again_holds_only_the_new_report(tmp_path):
    fixtures = ROOT / "tests" / "fixtures"
    out = tmp_path / "report"
    first = run("-m", "reports", "build", "--bench", str(fixtures / "bench_5687e3f.json"), "--ablations",
                str(fixtures / "study_5687e3f"), "--out", str(out))
    assert first.returncode == 0, first.stderr[-3000:]
    mine = [out / "notes.txt", out / "figures" / "my-sketch.jpg"]   # the user's own files stay
    for path in mine:
        path.write_text("mine")
    second = run("-m", "reports", "build", "--bench", str(fixtures / "bench_5687e3f.json"), "--out", str(out))
    assert second.returncode == 0, second.stderr[-3000:]
    md = (out / "report.md").read_text()
    assert "Ablation" not in md
    shown = {Path(p) for p in __import__("re").findall(r"\((figures/[^)]+\.png)\)", md)}
    assert {p.relative_to(out) for p in (out / "figures").glob("*.png")} == shown   # no figure of the first build
    assert not any("effects" in p.name or "study" in p.name for p in (out / "tables").iterdir())
    assert all(path.read_text() == "mine" for path in mine)


def test_a_report_that_fails_midway_leaves_the_earlier_report_whole(tmp_path, monkeypatch):
    """A build that fails after some figures (a bug in a section, here) leaves the earlier report as it was, and
    nothing of the new one beside it: no half report that looks whole."""
    import reports.render
    import reports.sections

    fixtures = ROOT / "tests" / "fixtures"
    out = tmp_path / "report"
    reports.render.build([fixtures / "bench_5687e3f.json"], out=out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    class Broken:
        __name__ = "broken"

        @staticmethod
        def add(r, inp):
            raise RuntimeError("a section's bug")

    made = reports.sections.sections
    monkeypatch.setattr(reports.render, "sections", lambda: [*made()[:2], Broken])
    try:
        reports.render.build([fixtures / "bench_5687e3f.json"], [fixtures / "study_5687e3f"], out=out)
    except RuntimeError as err:
        assert str(err) == "a section's bug"
    else:
        raise AssertionError("the broken section did not fail the build")
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
