import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from reports import ReportInputError, effects, load_ablations, load_bench, plots, summarize
from reports.cli import main
from reports.compare import compare, parse_threshold
from reports.render import build
from ablations.stats import diff_test, mean_interval
from reports.bench_tables import fastest_with_speedup, paper_table2, speed_ratios


def bench_case(name, arch="A", impl="vggcore", batch=1, median=0.5, extra=True, mode="forward"):
    info = {"arch": arch, "mode": mode, "batch_size": batch, "image_size": 32, "width": 1.0, "device": "cpu",
            "device_name": "cpu", "dtype": "fp32", "channels_last": False, "compiled": False,
            "implementation": impl, "images_per_s": batch / median, "macs_per_image": 1e6,
            "achieved_flops": 1e9, "peak_flops": 2e9, "mfu": 0.5, "peak_memory_bytes": 10 * 2 ** 20,
            "activation_bytes": 1000, "param_bytes": 4000, "torch_version": "x", "threads": 2}
    if not extra:
        info = {k: info[k] for k in ("arch", "mode", "batch_size", "implementation", "images_per_s")}
    return {"name": name, "group": f"{arch} {mode}", "extra_info": info,
            "stats": {"min": median, "max": median, "mean": median, "stddev": 0, "median": median, "iqr": 0,
                      "rounds": 3, "ops": 1 / median}}


def write_bench(path, cases):
    path.write_text(json.dumps({"machine_info": {"node": "n", "cpu": {"brand_raw": "cpu"}},
                                "commit_info": {"id": "abc", "dirty": False}, "datetime": "now",
                                "benchmarks": cases}))
    return path


@pytest.fixture
def bench_file(tmp_path):
    return write_bench(tmp_path / "bench.json", [
        bench_case("t[A-b1-vggcore]", batch=1, median=0.5),
        bench_case("t[A-b4-vggcore]", batch=4, median=1.0),
        bench_case("t[A-b1-torchvision]", impl="torchvision", batch=1, median=0.55),
        bench_case("t[A-b4-torchvision]", impl="torchvision", batch=4, median=1.1, extra=False),
    ])


def record(rid, variant, seed, status="ok", err=0.1, levels=None):
    final = {"test_top1_error": err, "test_top5_error": 0.0, "test_loss": err, "val_top1_error": err,
             "train_seconds": 1.0} if status == "ok" else None
    # a loss that fell 8x: every finished run here trained (ablations.stats.failures)
    history = [{"epoch": e, "lr": 0.1 / e, "train_loss": 1 / e ** 3, "val_top1_error": err + 0.1 / e} for e in (1, 2)]
    return {"run_id": rid, "study": "s", "variant": variant, "levels": levels or {"d": "on"}, "seed": seed,
            "status": status, "error": "boom" if status == "failed" else None, "final": final,
            "history": history if status != "failed" else [], "timing": {"seconds": 1.0},
            "provenance": {"git_commit": "abc", "versions": {"torch": "x"}}}


@pytest.fixture
def ablation_dir(tmp_path):
    d = tmp_path / "abl"
    d.mkdir()
    lines = [record("b0", "baseline", 0, err=0.10), record("b1", "baseline", 1, err=0.12),
             record("b2", "baseline", 2, err=0.14),
             record("o0", "d=off", 0, err=0.20, levels={"d": "off"}), record("o1", "d=off", 1, err=0.22, levels={"d": "off"}),
             record("o2", "d=off", 2, status="failed", levels={"d": "off"})]
    (d / "results.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    (d / "study.json").write_text(json.dumps({"study": "s", "metric": "test_top1_error", "maximize": False}))
    return d


def test_load_bench_tidy_with_missing_extra_info(bench_file):
    frame = load_bench([bench_file])
    assert len(frame) == 4 and {"median", "rounds", "arch", "mfu", "commit", "file"} <= set(frame.columns)
    partial = frame[frame["name"] == "t[A-b4-torchvision]"].iloc[0]
    assert np.isnan(partial["mfu"]) if partial["mfu"] is not None else True
    assert partial["images_per_s"] == pytest.approx(4 / 1.1)


def test_load_bench_rejects_other_files(tmp_path):
    (tmp_path / "x.json").write_text('{"foo": 1}')
    with pytest.raises(ReportInputError, match=r"x.json is not a pytest-benchmark JSON file: expected"):
        load_bench([tmp_path / "x.json"])
    (tmp_path / "y.json").write_text("not json")
    with pytest.raises(ReportInputError, match="y.json is not JSON"):
        load_bench([tmp_path / "y.json"])
    with pytest.raises(ReportInputError, match="does not exist"):
        load_bench([tmp_path / "nope.json"])


def test_load_ablations_counts_failed_runs(ablation_dir):
    data = load_ablations([ablation_dir])
    assert len(data.runs) == 6 and (data.runs["status"] == "failed").sum() == 1
    assert "level.d" in data.runs.columns and len(data.history) == 10
    assert data.studies.iloc[0]["metric"] == "test_top1_error"


def test_load_ablations_rejects_non_results(tmp_path):
    bad = tmp_path / "results.jsonl"
    bad.write_text("hello\nworld\n")
    with pytest.raises(ReportInputError, match="is not ablation results: expected JSON lines with a 'run_id'"):
        load_ablations([bad])


def test_summary_statistics_match_hand_computation(ablation_dir):
    runs = load_ablations([ablation_dir]).runs
    table = summarize(runs, "test_top1_error", method="t").set_index("variant")
    base = table.loc["baseline"]
    assert base["mean"] == pytest.approx(0.12) and base["std"] == pytest.approx(0.02) and base["median"] == 0.12
    half = 4.302653 * 0.02 / 3 ** 0.5  # t(0.975, 2) * s / sqrt(n)
    # an error rate is bounded: the union of the t interval cut to [0, 1] and the logit-scale t interval
    assert 0 <= base["ci_low"] <= 0.12 - half + 1e-6 and 0.12 + half - 1e-6 <= base["ci_high"] <= 1
    assert "bounded in [0, 1]" in base["ci_method"]
    off = table.loc["d=off"]
    assert (off["n"], off["n_ok"], off["n_failed"], off["n_not_trained"]) == (3, 2, 1, 0)  # counted, not dropped
    # a metric without known bounds keeps the plain Student-t interval, and says so
    loss = summarize(runs, "test_loss").set_index("variant").loc["baseline"]
    assert (loss["ci_low"], loss["ci_high"]) == pytest.approx((0.12 - half, 0.12 + half), rel=1e-5)
    assert "no known bounds: treated as unbounded" in loss["ci_method"]


def test_bootstrap_option_by_hand():
    boot = dict(method="bootstrap")
    assert mean_interval([0.0, 1.0], **boot) == (0.0, 1.0)  # resample means are 0, 0.5, 1 with 1/4, 1/2, 1/4
    assert mean_interval([0.3, 0.3, 0.3], **boot) == (0.3, 0.3)
    assert np.isnan(mean_interval([0.3])[0])
    low, high, p = diff_test([0.2, 0.21, 0.22], [0.1, 0.11, 0.12], **boot)
    assert p == 0.0 and 0.08 <= low <= high <= 0.12   # every resampled difference is positive
    assert mean_interval([0.1, 0.2, 0.4], seed=3, **boot) == mean_interval([0.1, 0.2, 0.4], seed=3, **boot)


def test_effects_default_is_welch_on_trained_seeds_with_holm_and_decisions(ablation_dir):
    from scipy import stats as sps

    runs = load_ablations([ablation_dir]).runs
    eff = effects(runs, "test_top1_error", min_effect=0.01)
    assert eff["variant"].tolist() == ["baseline", "d=off"]  # lower error first
    off = eff.set_index("variant").loc["d=off"]
    welch = sps.ttest_ind([0.20, 0.22], [0.10, 0.12, 0.14], equal_var=False)
    assert off["diff"] == pytest.approx(0.21 - 0.12) and off["p_value"] == pytest.approx(welch.pvalue)
    assert off["p_adjusted"] == pytest.approx(welch.pvalue)  # a family of one
    assert off["rel_diff"] == pytest.approx(0.09 / 0.12)
    assert off["statistic"] == "trained" and off["diff_method"] == "welch_trained"
    ci = welch.confidence_interval(0.95)
    # Welch's interval, cut to what the two bounded mean intervals allow
    assert ci.low - 1e-12 <= off["diff_low"] < off["diff"] < off["diff_high"] <= ci.high + 1e-12
    assert off["decision"] == "worse" and off["family"].startswith("1 comparison") and off["correction"] == "Holm"
    # the statistic of older code, Welch t on every finished seed, on an unbounded metric: scipy's interval
    plain = effects(runs, "test_loss", statistic="welch").set_index("variant").loc["d=off"]
    assert (plain["diff_low"], plain["diff_high"]) == pytest.approx((ci.low, ci.high))


def test_bench_tables(bench_file):
    frame = load_bench([bench_file])
    assert fastest_with_speedup(frame).iloc[0]["images_per_s"] == pytest.approx(4 / 1.0)
    ratios = speed_ratios(frame)
    # the b4 torchvision case lacks image_size and friends, so it cannot be paired with its vggcore twin
    assert ratios.set_index("batch_size")["ratio"].to_dict() == pytest.approx({1: 0.55 / 0.5})
    table2 = paper_table2().set_index("arch")
    assert table2.loc["D", "vggcore_params"] == 138_357_544 and table2.loc["D", "paper_params_M"] == 138


def test_every_plot_runs_and_returns_its_ax(bench_file, ablation_dir):
    import matplotlib.pyplot as plt

    bench = load_bench([bench_file])
    abl = load_ablations([ablation_dir])
    eff = effects(abl.runs, "test_top1_error")
    for draw in (lambda ax: plots.throughput_vs_batch(bench, ax), lambda ax: plots.memory_vs_batch(bench, ax),
                 lambda ax: plots.speed_ratio(speed_ratios(bench), ax), lambda ax: plots.mfu(bench, ax),
                 lambda ax: plots.ablation_effects(eff, ax), lambda ax: plots.learning_curves(abl.history, ax),
                 lambda ax: plots.lr_trace(abl.history, ax)):
        fig, ax = plt.subplots()
        assert draw(ax) is ax and ax.has_data()
        plt.close(fig)
        own = draw(None)
        assert own.figure is not None
        plt.close(own.figure)


def test_the_effects_figure_says_the_decision_of_a_variant_without_a_trained_seed():
    """A variant whose seeds all failed to train has no difference to place, but it can be decided (worse, by
    its failure rate): the figure must say so on its row, not leave the row blank."""
    import matplotlib.pyplot as plt

    eff = pd.DataFrame({"study": "s", "variant": ["baseline", "a=x", "b=y", "c=z"], "metric": "test_top1_error",
                        "diff": [0.0, 0.01, np.nan, np.nan], "diff_low": [np.nan, -0.01, np.nan, np.nan],
                        "diff_high": [np.nan, 0.02, np.nan, np.nan], "n_used": [6, 3, 0, 0],
                        "n_not_trained": [0, 0, 6, 2], "min_effect": 0.03,
                        "decision": ["baseline", "equivalent", "worse", "undecided"],
                        "decided_by": ["", "trained seeds", "failure rate", ""]})
    fig, ax = plt.subplots()
    plots.ablation_effects(eff, ax)
    texts = [t.get_text() for t in ax.texts]
    plt.close(fig)
    assert any("worse" in t and "failure rate" in t for t in texts), texts
    assert any("no trained seed" in t for t in texts) and not any("equivalent" in t for t in texts), texts


def test_build_writes_all_files_and_every_reference_exists(bench_file, ablation_dir, tmp_path):
    index = build([bench_file], [ablation_dir], tmp_path / "rep")
    out = index.parent
    md, page = (out / "report.md").read_text(), index.read_text()
    assert md.startswith("# vggbench report") and "## Summary" in md and "Paper Table 2" in md
    for ref in re.findall(r'src="([^"]+)"', page) + re.findall(r"\]\(([^)]+\.png)\)", md):
        assert (out / ref).is_file(), ref
    assert len(list((out / "figures").glob("*.png"))) >= 7
    assert {"benchmarks.csv", "speed_ratios.csv", "paper_table2.csv", "effects_s.csv", "effects.csv"} <= {
        p.name for p in (out / "tables").glob("*.csv")}
    assert "http" not in page.replace("http-equiv", "")  # no network assets
    assert "failed and diverged runs" in md


def test_partial_report_says_what_is_missing(ablation_dir, tmp_path):
    index = build([], [ablation_dir], tmp_path / "rep")
    assert "Not in this report: benchmark results" in (index.parent / "report.md").read_text()


def test_build_errors(tmp_path, capsys):
    assert main(["build", "--out", str(tmp_path / "r")]) == 2
    assert "nothing to report" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    abl = tmp_path / "a"
    abl.mkdir()
    (abl / "results.jsonl").write_text(json.dumps(record("b0", "baseline", 0)) + "\n")
    assert main(["build", "--ablations", str(abl), "--out", str(blocker / "r")]) == 2
    err = capsys.readouterr().err
    assert "cannot write the report to" in err and len(err.strip().splitlines()) == 1


def test_compare_exit_codes(tmp_path, capsys):
    old = write_bench(tmp_path / "old.json", [bench_case("a", median=1.0), bench_case("b", median=1.0)])
    same = write_bench(tmp_path / "same.json", [bench_case("a", median=1.02), bench_case("b", median=0.9)])
    slow = write_bench(tmp_path / "slow.json", [bench_case("a", median=1.2), bench_case("b", median=1.0)])
    assert main(["compare", str(old), str(same), "--threshold", "5%"]) == 0
    assert "no regression" in capsys.readouterr().out
    assert main(["compare", str(old), str(slow), "--threshold", "5%"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"a\s+1\.00 s\s+1\.20 s\s+1/1\s+1\.20x \[1\.10x, 1\.30x\]\s+regression", out)
    # 20% slower is within a 25% threshold, but one run per side cannot rule out more than 25% on this machine
    assert compare(str(old), str(slow), parse_threshold("25"))["verdict"].tolist() == ["inconclusive", "ok"]
    with pytest.raises(ValueError, match="percentage"):
        parse_threshold("five")


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def images_in_browser(index, tmp_path):
    """(images, loaded, injected) of the report page in headless Chromium: how many <img> it has, how many
    loaded, and how many scripts or on* handlers beyond the probe's own script it carries."""
    probe = index.with_name("probe.html")
    script = ("<script>window.addEventListener('load',()=>{const i=[...document.images];"
              "const bad=document.querySelectorAll('[onerror],[onload]').length+document.scripts.length-1;"
              "document.body.insertAdjacentHTML('beforeend','<p id=probe>images '+i.length+' loaded '+"
              "i.filter(x=>x.complete&&x.naturalWidth>0).length+' injected '+bad+'</p>')});</script>")
    probe.write_text(index.read_text().replace("</body>", script + "</body>"))
    result = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             "--disable-background-networking", "--disable-component-update", "--disable-sync",
                             f"--user-data-dir={tmp_path / 'chrome'}", "--allow-file-access-from-files",
                             "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                            capture_output=True, text=True, timeout=120)
    match = re.search(r"images (\d+) loaded (\d+) injected (\d+)", result.stdout)
    assert match, result.stderr[-2000:]
    return tuple(map(int, match.groups()))


@pytest.mark.browser
@pytest.mark.skipif(_chromium() is None, reason="no headless Chromium here (Debian: apt-get install chromium)")
def test_html_report_renders_in_a_browser(bench_file, ablation_dir, tmp_path):
    total, loaded, _ = images_in_browser(build([bench_file], [ablation_dir], tmp_path / "rep"), tmp_path)
    assert total >= 7 and loaded == total


def add_diverged_run(ablation_dir):
    """A d=off run that diverged in its second epoch: no final metrics, one epoch of history."""
    rec = record("o3", "d=off", 3, status="diverged", levels={"d": "off"})
    rec.update(diverged_epoch=2, error="non-finite training loss in epoch 2", history=rec["history"][:1])
    with open(ablation_dir / "results.jsonl", "a") as f:
        f.write(json.dumps(rec) + "\n")


def test_diverged_run_is_counted_in_n_and_listed(ablation_dir, tmp_path):
    add_diverged_run(ablation_dir)
    index = build([], [ablation_dir], tmp_path / "rep")
    effects_csv = pd.read_csv(index.parent / "tables" / "effects_s.csv").set_index("variant")
    off = effects_csv.loc["d=off"]
    assert (off["n"], off["n_ok"], off["n_failed"], off["n_diverged"]) == (4, 2, 1, 1)
    assert off["mean"] == pytest.approx(0.21)  # over the two that finished
    unfinished = pd.read_csv(index.parent / "tables" / "unfinished_s.csv")
    diverged = unfinished[unfinished["status"] == "diverged"]
    assert diverged[["variant", "seed", "diverged_epoch"]].values.tolist() == [["d=off", 3, 2]]
    assert "failed and diverged runs" in (index.parent / "report.md").read_text()
    assert "diverged" in index.read_text()


def test_cli_interval_t_gives_student_t_intervals(ablation_dir, tmp_path, capsys):
    intervals = {}
    for method in ("t", "bootstrap"):
        out = tmp_path / method
        assert main(["build", "--ablations", str(ablation_dir), "--out", str(out), "--interval", method]) == 0
        table = pd.read_csv(out / "tables" / "effects_s.csv").set_index("variant")
        intervals[method] = (table.loc["baseline", "ci_low"], table.loc["baseline", "ci_high"])
    half = 4.302653 * 0.02 / 3 ** 0.5  # t(0.975, 2) * s / sqrt(n) for the baseline's 0.10, 0.12, 0.14
    low, high = intervals["t"]   # bounded (an error rate): the t interval is inside it, and it inside [0, 1]
    assert 0 <= low <= 0.12 - half + 1e-6 and 0.12 + half - 1e-6 <= high <= 1
    # the bootstrap's resampled means never leave [0.10, 0.14]: a different, narrower interval
    assert 0.10 <= intervals["bootstrap"][0] < intervals["bootstrap"][1] <= 0.14
    assert "report written" in capsys.readouterr().out


def referenced_files_exist(out):
    page, md = (out / "index.html").read_text(), (out / "report.md").read_text()
    refs = re.findall(r"""src=["']([^"']+)["']""", page) + re.findall(r"\]\(([^)]+\.png)\)", md)
    assert refs and all((out / ref).is_file() for ref in refs)
    return md


def test_report_from_benchmarks_alone(bench_file, tmp_path):
    out = tmp_path / "rep"
    assert main(["build", "--bench", str(bench_file), "--out", str(out)]) == 0
    md = referenced_files_exist(out)
    assert "## Benchmarks" in md and "## Ablations" not in md
    assert "Not in this report: ablation results" in md
    tables = {p.name for p in (out / "tables").glob("*.csv")}
    assert {"benchmarks.csv", "fastest_settings.csv", "speed_ratios.csv"} <= tables
    assert not any(name.startswith(("effects_", "summary_")) for name in tables)
    assert len(pd.read_csv(out / "tables" / "benchmarks.csv")) == 4
    assert (out / "figures" / "throughput_forward.png").is_file()


def test_report_from_ablations_alone(ablation_dir, tmp_path):
    out = tmp_path / "rep"
    assert main(["build", "--ablations", str(ablation_dir), "--out", str(out)]) == 0
    md = referenced_files_exist(out)
    assert "## Ablations" in md and "## Benchmarks" not in md
    assert "Not in this report: benchmark results" in md
    tables = {p.name for p in (out / "tables").glob("*.csv")}
    assert {"effects_s.csv", "summary_s.csv", "unfinished_s.csv"} <= tables and "benchmarks.csv" not in tables
    assert {"effects_s.png", "curves_s.png", "lr_s.png"} <= {p.name for p in (out / "figures").glob("*.png")}


def test_scaling_section_beside_the_paper(bench_file, tmp_path):
    cases = []
    for n, ips in ((1, 10.0), (2, 18.0)):
        c = bench_case(f"s[n{n}]", batch=8, median=8 * n / ips, mode="ddp_train_step")
        c["extra_info"].update(world_size=n, images_per_s=ips, speedup=ips / 10, scaling_efficiency=ips / (10 * n),
                               backend="gloo", threads_per_rank=2 // n)
        cases.append(c)
    scaling_file = write_bench(tmp_path / "scaling.json", cases)
    frame = load_bench([scaling_file])
    ax = plots.scaling(frame, metric="scaling_efficiency")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "paper: 0.938 on 4 GPUs" in labels
    assert list(ax.lines[0].get_ydata()) == [1.0, 0.9]
    index = build([bench_file, scaling_file], [], tmp_path / "rep")
    md = (index.parent / "report.md").read_text()
    assert "## Data-parallel scaling" in md and (index.parent / "figures" / "scaling_speedup.png").is_file()
    table = (index.parent / "tables" / "scaling.csv").read_text()
    assert "scaling_efficiency" in table and "0.9" in table
    # the single-process grid keeps its own tables, without the scaling rows
    assert "ddp_train_step" not in (index.parent / "tables" / "benchmarks.csv").read_text()


def test_adjustments_and_seeds_needed_by_hand():
    from ablations.stats import benjamini_hochberg, holm, seeds_needed

    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert benjamini_hochberg([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.04, 0.04])
    adjusted = holm([0.02, np.nan, 0.5])  # a comparison without data is not part of the family
    assert adjusted[0] == pytest.approx(0.04) and np.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.5)
    assert seeds_needed(1.0, 1.0) == 17  # the textbook two-sample t answer: d = 1, alpha 0.05, power 0.8
    assert seeds_needed(1.0, 0.5) == 64 and np.isnan(seeds_needed(1.0, None))


def test_equivalent_when_the_interval_lies_inside_min_effect():
    import pandas as pd

    runs = pd.DataFrame([{"study": "s", "variant": v, "status": "ok", "m": x}
                         for v, xs in (("baseline", [0.10, 0.12, 0.14]), ("a=1", [0.11, 0.12, 0.13]))
                         for x in xs])
    row = lambda me: effects(runs, "m", min_effect=me).set_index("variant").loc["a=1"]  # noqa: E731
    assert row(0.1)["decision"] == "equivalent" and row(0.1)["diff_high"] < 0.1
    assert row(0.01)["decision"] == "undecided" and row(None)["decision"] == "undecided"
    with pytest.raises(ValueError, match="min_effect must be a non-negative number"):
        effects(runs, "m", min_effect=-0.1)


def test_build_uses_min_effect_and_correction_options(ablation_dir, tmp_path, capsys):
    assert main(["build", "--ablations", str(ablation_dir), "--out", str(tmp_path / "r"), "--min-effect", "0.5",
                 "--correction", "bh"]) == 0
    import pandas as pd

    eff = pd.read_csv(tmp_path / "r" / "tables" / "effects.csv").set_index("variant")
    assert eff.loc["d=off", "min_effect"] == 0.5 and eff.loc["d=off", "correction"] == "Benjamini-Hochberg"
    # inside +/-0.5 but significant: a difference that is real wins over "equivalent" (docs/ablations.md, Statistics)
    assert eff.loc["d=off", "decision"] == "worse"
    md = (tmp_path / "r" / "report.md").read_text()
    assert "adjusted p by Benjamini-Hochberg" in md and "equivalent: the interval lies inside +/-0.5" in md
    assert main(["build", "--ablations", str(ablation_dir), "--out", str(tmp_path / "r"), "--min-effect", "-1"]) == 2
    assert "--min-effect must be a non-negative number" in capsys.readouterr().err


HOSTILE = "a/b' onerror='alert(1)"


@pytest.fixture
def hostile_dir(tmp_path):
    """Results of a study whose name and variant names try to escape file names and HTML attributes."""
    d = tmp_path / "hostile"
    d.mkdir()
    bad_variant = 'd="><script>alert(2)</script>'
    lines = [{**record(f"b{i}", "baseline", i, err=0.1 + i / 100), "study": HOSTILE} for i in range(3)]
    lines += [{**record(f"o{i}", bad_variant, i, err=0.2 + i / 100, levels={"d": "<off>"}), "study": HOSTILE}
              for i in range(3)]
    # a second study whose name slugs the same way must not overwrite the first one's files
    lines += [{**record(f"c{i}", "baseline", i, err=0.3), "study": "a/b' onerror='alert(1)!"} for i in range(2)]
    lines += [{**record(f"p{i}", "x", i, err=0.4), "study": "a/b' onerror='alert(1)!"} for i in range(2)]
    (d / "results.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    (d / "study.json").write_text(json.dumps({"study": HOSTILE, "metric": "test_top1_error", "maximize": False}))
    return d


def _parse_page(page: str):
    from html.parser import HTMLParser

    class Collect(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags = []

        def handle_starttag(self, tag, attrs):
            self.tags.append((tag, attrs))

    parser = Collect()
    parser.feed(page)
    return parser.tags


def test_hostile_study_name_is_escaped_and_slugged(hostile_dir, bench_file, tmp_path):
    from urllib.parse import unquote

    index = build([bench_file], [hostile_dir], tmp_path / "rep")
    out, page = index.parent, index.read_text()
    tags = _parse_page(page)
    images = [dict(attrs) for tag, attrs in tags if tag == "img"]
    assert len(images) >= 7
    for tag, attrs in tags:
        names = [name for name, _ in attrs]
        assert not any(n.startswith("on") for n in names), (tag, attrs)   # no injected handler anywhere
        if tag == "img":
            assert sorted(names) == ["alt", "src"], attrs
    assert not any(tag == "script" for tag, _ in tags)
    for img in images:
        assert (out / unquote(img["src"])).is_file(), img["src"]
        assert (out / unquote(img["src"])).parent == out / "figures"
    # every file stays inside figures/ and tables/, one per name (the two near-identical studies do not collide)
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert all(p.count("/") <= 1 for p in written), written
    effects = [p for p in written if p.startswith("tables/effects_")]
    assert len(effects) == 2, written
    assert HOSTILE in page.replace("&#x27;", "'")  # the name is shown, escaped, not dropped


def test_reports_build_cli_with_a_study_named_like_a_path(tmp_path, capsys):
    d = tmp_path / "abl"
    d.mkdir()
    lines = [{**record(f"b{i}", "baseline", i), "study": "sub/dir"} for i in range(2)]
    lines += [{**record(f"o{i}", "d=off", i, err=0.2, levels={"d": "off"}), "study": "sub/dir"} for i in range(2)]
    (d / "results.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    assert main(["build", "--ablations", str(d), "--out", str(tmp_path / "rep")]) == 0, capsys.readouterr().err
    assert not (tmp_path / "rep" / "tables" / "summary_sub").exists()
    assert "sub/dir" in (tmp_path / "rep" / "report.md").read_text()


@pytest.mark.browser
@pytest.mark.skipif(_chromium() is None, reason="no headless Chromium here (Debian: apt-get install chromium)")
def test_hostile_report_in_a_browser_loads_every_figure_and_runs_nothing(hostile_dir, tmp_path):
    total, loaded, injected = images_in_browser(build([], [hostile_dir], tmp_path / "rep"), tmp_path)
    assert total >= 4 and loaded == total and injected == 0


def test_fastest_setting_is_named_in_full_and_divided_by_plain_fp32_of_its_own_run(tmp_path):
    """The demo's quick grid and its settings stage both time plain fp32 A at batch 4: the speed-up of the fastest
    setting must use the plain case of its own run (whatever the file order), and its label must name
    channels_last (rows out of a frame hold numpy bools, which `is True` missed)."""
    from reports.bench_tables import fastest_with_speedup

    def case(name, median, channels_last):
        c = bench_case(name, batch=4, median=median)
        c["extra_info"]["channels_last"] = channels_last
        return c

    quick = write_bench(tmp_path / "quick.json", [case("q[plain]", 1.0, False)])
    settings = write_bench(tmp_path / "settings.json", [case("s[plain]", 0.8, False), case("s[cl]", 0.5, True)])
    for files in ([quick, settings], [settings, quick]):
        row = fastest_with_speedup(load_bench(files)).iloc[0]
        assert row["setting"] == "fp32 channels_last b4 vggcore"
        assert row["speedup_vs_fp32"] == pytest.approx(0.8 / 0.5)
