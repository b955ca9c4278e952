"""`./dev gpu-check`: its dry run end to end on the CPU, and the GPU plan's wiring without a GPU."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vggbench.gpu_check import Check, CheckConfig, StageFailed, merge_bench

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_dry_run_writes_every_output_and_passes(tmp_path):
    out = tmp_path / "check"
    # A generous budget, as CI machines are shared; one OpenMP thread, which spares the tiny CPU stages the
    # spin-waits of two threads on a loaded machine.
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([str(ROOT / "dev"), "gpu-check", "--dry-run", "--out", str(out), "--budget", "1200"],
                            capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr + (out / "gpu-check.log").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] and summary["dry_run"] and summary["torch_version"]
    assert [s["name"] for s in summary["stages"]] == ["environment", "cuda_tests", "bench", "train", "report"]
    assert all(s["status"] == "ok" for s in summary["stages"])
    # each stage that runs a subprocess took time (environment runs in-process on torch already imported)
    assert all(s["seconds"] > 0 for s in summary["stages"] if s["name"] != "environment")
    stages = {s["name"]: s["detail"] for s in summary["stages"]}
    assert stages["cuda_tests"]["tests"] >= 1  # the CUDA test was selected (and skipped: no GPU here)
    assert 0 <= stages["train"]["fp32"]["test_top1_error"] <= 1
    bench = json.loads((out / "bench.json").read_text())
    assert stages["bench"]["cases"] == len(bench["benchmarks"]) >= 2
    assert {b["extra_info"]["device"] for b in bench["benchmarks"]} == {"cpu"}
    top = sorted(p.name for p in out.iterdir() if p.is_file())
    assert {"summary.json", "bench.json", "gpu-check.log", "report.md"} <= set(top) and len(top) <= 8
    report = (out / "report.md").read_text()
    assert "](report/figures/" in report and "](figures/" not in report
    assert all((out / link).exists() for link in re.findall(r"\]\((report/figures/[^)]+)\)", report))


def test_gpu_plan_covers_archs_dtypes_layouts_reference_and_ab(tmp_path):
    parts = Check(CheckConfig(out=tmp_path)).bench_parts()
    args = [" ".join(a) for _, a in parts]
    assert all("--vgg-devices cuda" in a and "--vgg-dtypes fp32,bf16,fp16" in a for a in args)
    assert {a.split("--vgg-archs ")[1].split()[0] for a in args} == {"A", "D"}
    assert any("--vgg-channels-last on" in a for a in args) and any("--vgg-channels-last off" in a for a in args)
    assert any("--vgg-reference -k torchvision" in a for a in args)
    ab = [a for a in args if "--vgg-ab" in a]
    assert len(ab) == 2 and all("-k interleaved" in a and a.endswith("--vgg-batch-sizes 256 --vgg-modes train_step")
                                for a in ab)
    assert all("--vgg-batch-sizes 32,256" in a for a in args if "--vgg-ab" not in a)


def test_a_failed_or_timed_out_stage_does_not_stop_the_next(tmp_path):
    check = Check(CheckConfig(out=tmp_path, dry_run=True))

    def broken(stage, deadline):
        raise StageFailed("planted")

    def slow(stage, deadline):
        return check.run([sys.executable, "-c", "import time; time.sleep(30)"], timeout=1.5)

    check.stage("first", broken, 10)
    check.stage("second", slow, 10)
    check.stage("third", lambda stage, deadline: {"fine": True}, 10)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [(s["name"], s["status"]) for s in summary["stages"]] == [
        ("first", "failed"), ("second", "timeout"), ("third", "ok")]
    assert summary["stages"][1]["seconds"] < 15 and not summary["ok"]
    assert "planted" in summary["stages"][0]["detail"]["error"]


def test_merge_bench_keeps_every_part(tmp_path):
    for i in range(2):
        (tmp_path / f"p{i}.json").write_text(json.dumps({"machine_info": {"i": i}, "benchmarks": [{"name": f"b{i}"}]}))
    assert merge_bench([tmp_path / "p0.json", tmp_path / "p1.json"], tmp_path / "all.json") == 2
    merged = json.loads((tmp_path / "all.json").read_text())
    assert [b["name"] for b in merged["benchmarks"]] == ["b0", "b1"] and merged["machine_info"] == {"i": 0}


def test_cuda_only_plugin_selects_tests_that_need_cuda(pytester):
    pytester.makepyfile(test_sample="""
        import pytest

        def test_cuda_named():
            pass

        @pytest.mark.skipif(False, reason="needs a CUDA device")
        def test_marked():
            pass

        def test_plain():
            pass
    """)
    result = pytester.runpytest("-p", "bench.cuda_only", "-v")
    result.assert_outcomes(passed=2, deselected=1)
    result.stdout.fnmatch_lines(["*test_cuda_named PASSED*", "*test_marked PASSED*"])


@pytest.mark.parametrize("args,match", [
    (["--batch-sizes", "32,x"], "--batch-sizes"),
    (["--budget", "0"], "--budget must be a finite number > 0, got 0.0"),
])
def test_bad_options_are_one_line_errors(args, match, tmp_path):
    result = subprocess.run([sys.executable, "-m", "vggbench", "gpu-check", "--out", str(tmp_path), *args],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 2 and match in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
