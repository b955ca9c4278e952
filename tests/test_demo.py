"""The main job (`python -m vggbench demo`, what `./dev demo` runs) end to end at a tiny size, killed in its
study stage and run again to completion."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from ablations import expand, load_study
from tiny_study import tiny_study
from json_records import json_records

STUDY = tiny_study(name="tinydemo", epochs=3)
# The quick grid cut to one tiny case (the demo adds --vgg-reference; torchvision skips width 0.125).
TINY_BENCH = ["--vgg-archs=A", "--vgg-modes=forward", "--vgg-batch-sizes=1", "--vgg-width=0.125",
              "--vgg-image-size=32", "--vgg-devices=cpu", "--vgg-max-time=0.02"]


def demo_cmd(out, study):
    return [sys.executable, "-m", "vggbench", "demo", "--out", str(out), "--study", str(study),
            "--bench-args", *TINY_BENCH]


@pytest.mark.slow
def test_demo_killed_in_its_study_resumes_to_a_full_report(tmp_path):
    study = tmp_path / "tinydemo.toml"
    study.write_text(STUDY)
    out = tmp_path / "demo"
    results = out / "ablations" / "results.jsonl"
    proc = subprocess.Popen(demo_cmd(out, study), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    # kill once the first run is recorded and the second has a checkpoint: mid-study, mid-run
    while time.time() < deadline and proc.poll() is None:
        if (results.exists() and results.read_text().count("\n") >= 1
                and len(list(out.glob("ablations/runs/*/checkpoint.pt"))) >= 2):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the demo ended before it could be killed in its study stage"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    # the benchmark stage had finished: a complete pytest-benchmark file, no partial one left behind
    bench = out / "bench.json"
    cases = json.loads(bench.read_text())["benchmarks"]
    assert [c["extra_info"]["arch"] for c in cases] == ["A"] and cases[0]["extra_info"]["width"] == 0.125
    assert not list(out.glob("*.partial"))
    bench_stamp = bench.stat().st_mtime_ns
    assert 1 <= len(json_records(results)) < 2 and not (out / "report").exists()

    done = subprocess.run(demo_cmd(out, study), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # run as a user runs it, its progress bar on (stderr): the study's bar went from the recorded run to the
    # total, with its time and rate, and wrote the run's line above it with the run's figure (tqdm.write: stdout)
    assert re.search(r"study tinydemo: 100%\|[^|\n\r]*\| 2/2 \[\d\d:\d\d<00:00, +\d+\.\d+(s/run|run/s)\]",
                     done.stderr), done.stderr[-3000:]
    assert re.search(r"^\[2/2\] \S+ seed 0: ok test_top1_error=0\.\d{4} \(\d+\.\d s\)$", done.stdout, re.M), \
        done.stdout[-3000:]
    assert re.search(r"^\[3/3\] report$", done.stdout, re.M) and "Report: " in done.stdout
    assert bench.stat().st_mtime_ns == bench_stamp  # not measured again
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    ids = sorted(r["run_id"] for r in lines)
    assert ids == sorted(r.run_id for r in expand(load_study(study)))  # every run once, none twice
    assert all(r["status"] == "ok" for r in lines)
    assert lines[-1]["resumed_from_epoch"] > 0  # the run in flight went on from its checkpoint
    report = out / "report"
    md = (report / "report.md").read_text()
    assert "## Benchmarks" in md and "## Ablations" in md and "tinydemo" in md
    page = (report / "index.html").read_text()
    refs = re.findall(r"""src=["']([^"']+)["']""", page)
    assert refs and all((report / ref).is_file() for ref in refs)
    assert {"benchmarks.csv", "effects_tinydemo.csv"} <= {p.name for p in (report / "tables").glob("*.csv")}
