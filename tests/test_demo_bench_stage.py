"""The demo's benchmark stage: the quick grid, then bf16 and channels_last for one architecture, both reported."""

import json

import vggbench.demo as demo


def test_bench_stage_times_settings_and_reports_both(tmp_path, monkeypatch):
    calls, built = [], []

    def fake_suite(label, path, args):
        calls.append(args)
        path.write_text(json.dumps({"machine_info": {}, "benchmarks": [{"name": "x"}]}))

    monkeypatch.setattr(demo, "_run_suite", fake_suite)
    monkeypatch.setattr("ablations.runner.run_study", lambda *a, **k: None)
    monkeypatch.setattr("reports.render.build", lambda bench, abl, out: built.append(bench) or out / "index.html")
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


def test_a_bench_file_of_another_shape_is_measured_again(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(demo, "_run_suite", lambda label, path, args: calls.append(path) or path.write_text(
        json.dumps({"machine_info": {}, "benchmarks": [{"name": "x"}]})))
    monkeypatch.setattr("ablations.runner.run_study", lambda *a, **k: None)
    monkeypatch.setattr("reports.render.build", lambda bench, abl, out: out / "index.html")
    (tmp_path / "bench.json").write_text("[]")  # valid JSON, not a benchmark file
    demo.run_demo(tmp_path, [], demo.DEMO_STUDY)
    assert calls[0] == tmp_path / "bench.json"
