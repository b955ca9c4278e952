"""The demo's benchmark stage: the quick grid, then the settings that can win on this CPU and channels_last for one
architecture, both reported; and the seed cap of its study from the budget (stub figures throughout)."""

import json


import vggbench.demo as demo
from vggbench.demo_plan import Workers, seed_cap, settings_dtypes, workers_for

AMX = {"fp32": 329e9, "bf16": 2176e9}   # peaks measured on a CPU with bf16 arithmetic
AVX2 = {"fp32": 155e9, "bf16": 0.9e9}   # ... and on this AVX2-only one (matmul, HELPERS.md)


def fake_stages(monkeypatch, peaks=AMX):
    calls, built = [], []

    def fake_suite(label, path, args):
        calls.append(args)
        path.write_text(json.dumps({"machine_info": {}, "benchmarks": [{"name": "x"}]}))

    monkeypatch.setattr(demo, "_run_suite", fake_suite)
    monkeypatch.setattr("vggbench.demo_plan.measure_peaks", lambda dtypes: {d: peaks[d] for d in dtypes})
    monkeypatch.setattr(demo, "run_study_stage", lambda *a, **k: "")
    monkeypatch.setattr(demo, "study_layout", lambda study, out, threads=None: study)
    monkeypatch.setattr(demo, "_fixed", lambda *a, **k: "")
    monkeypatch.setattr("reports.render.build", lambda bench, abl, out: built.append(bench) or out / "index.html")
    return calls, built


def test_bench_stage_times_settings_and_reports_both(tmp_path, monkeypatch):
    calls, built = fake_stages(monkeypatch)
    study = demo.ROOT / "ablations" / "studies" / "demo.toml"
    demo.run_demo(tmp_path, ["--vgg-reference", "--vgg-width=0.125"], study)
    quick, settings = calls
    assert quick == [*demo.QUICK_ARGS, "--vgg-reference", "--vgg-width=0.125"]
    assert settings[settings.index("--vgg-dtypes") + 1] == "fp32,bf16"
    assert settings[settings.index("--vgg-channels-last") + 1] == "off,on"
    assert settings[settings.index("--vgg-archs") + 1] == "A"
    assert "--vgg-reference" not in settings and settings[-1] == "--vgg-width=0.125"  # the user's options win
    assert built == [[tmp_path / "bench.json", tmp_path / "bench-settings.json"]]
    calls.clear()
    demo.run_demo(tmp_path, ["--vgg-reference"], study)  # both files exist: a rerun measures nothing again
    assert calls == []


def test_a_cpu_without_fast_bf16_does_not_time_it_and_says_why(tmp_path, monkeypatch, capsys):
    calls, _ = fake_stages(monkeypatch, AVX2)
    demo.run_demo(tmp_path, [], demo.DEMO_STUDY)
    settings = calls[1]
    assert settings[settings.index("--vgg-dtypes") + 1] == "fp32"
    assert settings[settings.index("--vgg-channels-last") + 1] == "off,on"   # channels_last is still measured
    out = capsys.readouterr().out
    assert "bf16 left out of the settings stage: its measured peak on this CPU is 0.9 GFLOP/s, 0.6% of fp32's" in out
    assert settings_dtypes({"fp32": 1.0, "bf16": 0.5}) == (["fp32", "bf16"], [])   # half of fp32: still timed


def test_a_bench_file_of_another_shape_is_measured_again(tmp_path, monkeypatch):
    calls, _ = fake_stages(monkeypatch)
    (tmp_path / "bench.json").write_text("[]")  # valid JSON, not a benchmark file
    demo.run_demo(tmp_path, [], demo.DEMO_STUDY)
    assert calls[0][:len(demo.QUICK_ARGS)] == demo.QUICK_ARGS


def test_the_seed_cap_fits_the_worst_case_in_the_budget():
    # 480 s, 260 s spent (benchmarks and the 15 listed runs), 20 s kept for the report: 200 s for rounds of at
    # most 5 runs of 12 s (60 s a round): 3 rounds, a cap of 6 seeds
    cap = seed_cap(480, 260, 12.0, arms=5, initial_seeds=3, upper=10)
    assert cap.max_seeds == 6 and "3 round(s) fit" in cap.reason
    # on 2 workers a round of 5 runs is 3 runs long: 200 s hold 200 // 36 = 5 rounds of 12 s runs, the cap 8
    two = seed_cap(480, 260, 12.0, arms=5, initial_seeds=3, upper=10, workers=2)
    assert two.max_seeds == 8 and "5 arms on 2 workers a round of added seeds takes at most 36 s" in two.reason
    assert seed_cap(480, 100, 1.0, 5, 3, 10).max_seeds == 10          # the study's max_seeds bounds it
    assert seed_cap(480, 470, 12.0, 5, 3, 10).max_seeds == 3          # no time left: the listed seeds only
    assert seed_cap(480, 100, 0.0, 5, 3, 10).max_seeds == 10          # no recorded time: the study's own cap


def test_the_studys_runs_take_a_core_each_and_no_more_workers_than_arms():
    assert workers_for(arms=5, cores=2) == Workers(processes=2, threads=1)
    assert workers_for(arms=5, cores=16) == Workers(processes=5, threads=3)
    assert workers_for(arms=5, cores=1) == Workers(processes=1, threads=1)


def test_a_seed_cap_below_the_study_seeds_is_one_line_and_nothing_runs(tmp_path, monkeypatch, capsys):
    from vggbench.cli import main

    calls, _ = fake_stages(monkeypatch)
    assert main(["demo", "--out", str(tmp_path / "d"), "--max-seeds", "2"]) == 2
    err = capsys.readouterr().err
    assert "--max-seeds 2 is below the study's 3 seeds; give at least 3" in err and len(err.splitlines()) == 1
    assert calls == [] and not (tmp_path / "d").exists()
    assert main(["demo", "--out", str(tmp_path / "d"), "--budget", "-5"]) == 2
    assert "--budget must be" in capsys.readouterr().err


def test_the_study_stage_caps_from_the_listed_runs_and_runs_until_decided(tmp_path, monkeypatch, capsys):
    """The demo's study: its listed seeds first, a cap from their recorded times, then --until-decided under a
    plan with that cap; a rerun keeps the cap the folder recorded."""
    from ablations.store import Store
    from ablations.study import expand, load_study

    study = load_study(demo.DEMO_STUDY)
    folder = tmp_path / "abl"
    ran = {}

    def fake_run_study(study_, store, options, *a, **k):
        ran.setdefault("options", []).append(options.workers)
        store.prepare()
        for run in expand(study_):
            store.results_path.open("a").write(json.dumps({"run_id": run.run_id, "study": study_.name,
                                                          "status": "ok", "timing": {"seconds": 12.0}}) + "\n")
        return {"ran": 15}

    def fake_until(study_, store, options, plan):
        ran["options"].append(options.workers)
        ran["plan"] = store.keep_plan(plan)
        return {"decisions": {"dropout=off": "equivalent"}, "seeds": {"dropout=off": 6}}

    monkeypatch.setattr("ablations.runner.run_study", fake_run_study)
    monkeypatch.setattr("ablations.adaptive.run_until_decided", fake_until)
    monkeypatch.setattr(demo.time, "perf_counter", lambda: 260.0)
    line = demo.run_study_stage(study, folder, 480.0, 0.0, None)
    assert ran["options"] == [1, 1]   # no workers given: one run at a time, listed seeds and added ones
    assert ran["plan"].max_seeds == 6 and ran["plan"].rule == "obf" and ran["plan"].min_effect == study.min_effect
    assert "seed cap 6 per variant" in capsys.readouterr().out and line.startswith("Decisions: dropout=off")
    monkeypatch.setattr(demo.time, "perf_counter", lambda: 400.0)   # a rerun, later: the recorded cap stands
    demo.run_study_stage(study, folder, 480.0, 0.0, None)
    assert ran["plan"].max_seeds == 6 and Store(folder).plan().max_seeds == 6
    # on two workers the listed runs and the added ones go two at a time, and the cap counts rounds so
    ran.clear()
    monkeypatch.setattr(demo.time, "perf_counter", lambda: 260.0)
    demo.run_study_stage(study, tmp_path / "abl2", 480.0, 0.0, None, Workers(2, 1))
    assert ran["options"] == [2, 2] and ran["plan"].max_seeds == 8


def test_the_study_trains_channels_last_only_where_it_measured_faster_and_a_rerun_keeps_the_choice(
        tmp_path, capsys, monkeypatch):
    import vggcore.train.fastest as fastest
    from ablations.study import expand, load_study

    assert fastest.pick_layout({"contiguous": 0.05, "channels_last": 0.034}).channels_last
    slow = fastest.pick_layout({"contiguous": 0.05, "channels_last": 0.049})   # 1.02x: within noise, contiguous
    assert not slow.channels_last and "must be 1.05x faster" in slow.reason
    study = load_study(demo.DEMO_STUDY)
    calls = []

    def measure(model, batch_size, device="cpu"):
        import torch

        calls.append((model.width, batch_size, torch.get_num_threads()))
        return fastest.pick_layout({"contiguous": 0.05, "channels_last": 0.03})

    monkeypatch.setattr(fastest, "layout", measure)
    chosen = demo.study_layout(study, tmp_path, threads=1)
    again = demo.study_layout(study, tmp_path, threads=1)   # a rerun reads the folder's choice, measures nothing
    assert calls == [(0.25, 64, 1)]   # the study's own base model and batch size, on the runs' threads
    assert chosen.base["train"]["channels_last"] and again == chosen
    assert all(r.config["train"]["channels_last"] for r in expand(chosen))
    assert "kept from" in capsys.readouterr().out


def test_the_layouts_are_timed_on_the_studys_model():
    import torch

    from vggcore.config import VGGConfig
    from vggcore.threads import torch_threads
    from vggcore.train.fastest import layout

    before = torch.get_num_threads()
    with torch_threads(1):
        chosen = layout(VGGConfig("A", batch_norm=True, width=0.0625, image_size=32, num_classes=10), 2, steps=1)
    assert set(chosen.step_seconds) == {"contiguous", "channels_last"}
    assert all(t > 0 for t in chosen.step_seconds.values())
    assert torch.get_num_threads() == before   # the process's own thread count is back
