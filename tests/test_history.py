"""Benchmark history: step detection on a planted step, its false-step rate, and machines kept apart."""

import json

import numpy as np
import pytest

from reports.history import detect_step, history, latest_runs, machines, steps
from reports.load import load_bench
from simulated_bench import CASES, RUN_SD, simulate_run


def autosaves(folder, rng, factors, node="vm", start=0):
    """pytest-benchmark autosave files, one per run; `factors[i]` scales every case's time in run i."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, factor in enumerate(factors):
        doc = simulate_run(rng, CASES, slowdown={"A-forward-b4": factor})
        doc["datetime"] = f"2026-11-{1 + start + i:02d}T00:00:00"
        doc["machine_info"] = {"node": node, "cpu": {"brand_raw": f"{node} cpu"}}
        doc["commit_info"] = {"id": f"c{start + i}"}
        for b in doc["benchmarks"]:  # the figures a report needs, as bench/runner.py records them
            arch, mode, batch = b["name"].split("-")
            b["extra_info"].update(arch=arch, mode=mode, batch_size=int(batch[1:]), device="cpu", dtype="fp32",
                                   channels_last=False, compiled=False, implementation="vggcore",
                                   images_per_s=int(batch[1:]) / b["stats"]["median"], mfu=0.1,
                                   peak_memory_bytes=2 ** 30, unstable=False)
        (folder / f"{start + i + 1:04d}_c{start + i}.json").write_text(json.dumps(doc))


def test_planted_step_is_found_where_it_was_planted(tmp_path):
    autosaves(tmp_path / ".benchmarks" / "Linux-x86_64", np.random.default_rng(0), [1.0] * 4 + [1.5] * 4)
    hist = history(load_bench([tmp_path / ".benchmarks"]))
    assert len(hist) == 8 * len(CASES) and list(hist[hist["name"] == "A-forward-b4"]["run"]) == list(range(8))
    found = steps(hist)
    assert list(found["name"]) == ["A-forward-b4"]  # only the case that changed
    step = found.iloc[0]
    assert step["step_at_run"] == 4 and step["commit"] == "c4" and step["verdict"] == "regression"
    assert step["low"] <= 1.5 <= step["high"]


def test_flat_history_rarely_shows_a_step():
    """Seeded simulation: 8 runs with no change under this VM's noise; a step is reported <= 5% of the time."""
    rng = np.random.default_rng(1)
    found = 0
    for _ in range(300):
        medians = np.exp(rng.normal(0, RUN_SD, 8)) * np.exp(rng.normal(0, 0.05 / np.sqrt(8), 8))
        found += detect_step(medians, np.full(8, 0.05 ** 2 * 1.57 / 8)) is not None
    assert found / 300 <= 0.05


def test_machines_are_kept_apart(tmp_path):
    rng = np.random.default_rng(2)
    autosaves(tmp_path / "b" / "Linux-a", rng, [1.0, 1.0, 1.0], node="alpha")
    autosaves(tmp_path / "b" / "Linux-b", rng, [2.0, 2.0], node="beta", start=5)
    bench = load_bench([tmp_path / "b"])
    found = machines(bench)
    assert list(found["machine"]) == ["alpha (alpha cpu)", "beta (beta cpu)"] and list(found["runs"]) == [3, 2]
    latest, machine = latest_runs(bench)
    assert machine == "beta (beta cpu)" and len(latest) == len(CASES) and set(latest["commit"]) == {"c6"}
    # a 2x faster machine is no step: each machine's series is tested on its own
    assert steps(history(bench)).empty


def test_report_shows_history_and_names_machines(tmp_path):
    from reports.render import build

    rng = np.random.default_rng(3)
    autosaves(tmp_path / ".benchmarks" / "Linux-a", rng, [1.0] * 3 + [1.5] * 3, node="alpha")
    autosaves(tmp_path / ".benchmarks" / "Linux-b", rng, [1.0], node="beta", start=10)
    index = build([tmp_path / ".benchmarks"], [], tmp_path / "report")
    md = index.with_name("report.md").read_text()
    assert "2 machines" in md and "alpha (alpha cpu): 6 run(s)" in md and "beta (beta cpu): 1 run(s)" in md
    assert "A-forward-b4" in md and "regression" in md
    assert (tmp_path / "report" / "figures" / "history_alpha_alpha_cpu.png").exists()


@pytest.mark.parametrize("n", [1])
def test_single_run_has_no_step(n):
    assert detect_step([1.0] * n, [0.0] * n) is None


def test_fastest_setting_states_its_speedup_with_interval(tmp_path):
    """bf16 twice as fast as plain fp32 in one run: the summary says ~2x with an interval around it."""
    from reports.bench_tables import fastest_display, fastest_with_speedup

    rng = np.random.default_rng(4)
    docs = []
    for dtype, factor in (("fp32", 1.0), ("bf16", 0.5)):
        doc = simulate_run(rng, {f"A-train_step-b4-{dtype}": 1.0}, slowdown={f"A-train_step-b4-{dtype}": factor})
        for b in doc["benchmarks"]:
            b["extra_info"].update(arch="A", mode="train_step", batch_size=4, device="cpu", dtype=dtype,
                                   channels_last=False, compiled=False, implementation="vggcore",
                                   images_per_s=4 / b["stats"]["median"], unstable=False)
        docs += doc["benchmarks"]
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"machine_info": {"node": "vm"}, "datetime": "2026-11-28", "benchmarks": docs}))
    table = fastest_with_speedup(load_bench([path]))
    row = table.iloc[0]
    assert row["setting"] == "bf16 b4 vggcore"
    assert row["speedup_low"] < row["speedup_vs_fp32"] < row["speedup_high"] and 1 < row["speedup_low"]
    assert 1.7 < row["speedup_vs_fp32"] < 2.3
    text = fastest_display(table).iloc[0]["speed-up over plain fp32 [95%]"]
    assert text.startswith(f"{row['speedup_vs_fp32']:.2f}x [") and "e+" not in text
