"""`./dev gpu-check` (`python -m vggbench gpu-check`): the GPU side of the project in one command, within a time
budget, on a bare GPU box.

Needs a Python with torch, torchvision, pytest-benchmark, pandas, matplotlib, scikit-learn (and scipy, tabulate
for the report): `./dev` runs $PYTHON when set, else the project's .venv/bin/python when there is one, else
python3 (a GPU box with torch & co. preinstalled); no pip, no network: it runs from the source tree with
PYTHONPATH=. (which `./dev` sets). A Python without torch is refused in one line (vggbench/__main__.py). Stages,
each a subprocess with its own time budget; a failed stage never stops the next ones:

    environment  GPU name, torch and CUDA versions, missing optional modules
    cuda_tests   the test suite's CUDA tests (bench/cuda_only.py selects them)
    bench        A and D, fp32/bf16/fp16, channels_last off and on, batch sizes up to 256, beside torchvision's
                 VGG, then vggcore and torchvision interleaved (--vgg-ab) at the largest batch
    train        digits at 32 px on the GPU (`python -m vggcore train --device cuda`), fp32, then bf16 +
                 channels_last if the stage's budget allows
    report       `python -m reports build` over the benchmark JSON

    ./dev gpu-check                     # writes into $OUT when set, else runs/gpu-check/
    ./dev gpu-check --out DIR --budget 300 --max-time 0.2
    ./dev gpu-check --dry-run           # any machine, CPU only: imports, wiring, output folder, a tiny report

The top of the output folder holds what matters (at most 8 files): summary.json (GPU, versions, each stage's
status and seconds, the key figures), bench.json, gpu-check.log, report.md and three of its figures. The full
report is in report/, bench parts, test results and training runs in parts/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.sampling import MIN_ROUNDS
from vggcore.errors import UsageError
from vggcore.lock import FolderNotWritable
from vggcore.validation import integer, number

ROOT = Path(__file__).resolve().parents[1]
ARCHS = ("A", "D")
DTYPES = "fp32,bf16,fp16"
# Share of --budget each stage may take; the rest covers start-up and the environment stage (in-process).
SHARES = {"cuda_tests": 0.10, "bench": 0.60, "train": 0.12, "report": 0.08}
KEY_FIGURES = ("throughput_train_step.png", "mfu.png", "vggcore_vs_torchvision.png")
OPTIONAL_MODULES = ("scipy", "tabulate", "pytest_benchmark", "sklearn", "matplotlib", "pandas", "torchvision")


@dataclass(frozen=True)
class CheckConfig:
    out: Path                     # output folder
    dry_run: bool = False         # CPU only, tiny sizes: checks everything but the GPU parts
    budget_s: float = 300.0       # whole check, seconds; each stage gets its SHARES of it
    max_time: float = 0.2         # bench: seconds of timed rounds per case (MIN_ROUNDS rounds always run)
    batch_sizes: str = "32,256"   # bench: batch sizes; the largest also for the interleaved A/B comparison
    modes: str = "forward,train_step"  # bench: step kinds
    epochs: int = 10              # train: epochs on digits

    @property
    def device(self) -> str:
        return "cpu" if self.dry_run else "cuda"


@dataclass
class Stage:
    name: str
    status: str = "skipped"       # ok, failed, timeout, skipped
    seconds: float = 0.0
    budget_s: float = 0.0
    detail: dict = field(default_factory=dict)


class StageFailed(Exception):
    pass


class StageTimeout(Exception):
    pass


class Check:
    def __init__(self, config: CheckConfig) -> None:
        self.config = config
        self.out = config.out
        self.parts = self.out / "parts"
        self.stages: list[Stage] = []
        self.info: dict = {}
        self.started = time.time()

    # ------------------------------------------------------------------------------------------ plumbing
    def say(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)
        self.log(text)

    def log(self, text: str) -> None:
        with open(self.out / "gpu-check.log", "a") as f:
            f.write(text + "\n")

    def run(self, argv: list[str], timeout: float) -> int:
        """Run `argv` with output appended to the log; kill its whole process group at `timeout` seconds."""
        if timeout <= 1:
            raise StageTimeout("no time left in this stage's budget")
        self.log(f"$ {' '.join(argv)}    (timeout {timeout:.0f} s)")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
        with open(self.out / "gpu-check.log", "a") as log:
            proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)
            try:
                return proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise StageTimeout(f"killed after {timeout:.0f} s: {' '.join(argv[:4])} ...") from None

    def stage(self, name: str, fn, budget: float) -> Stage:
        stage = Stage(name, budget_s=round(budget, 1))
        self.say(f"== {name} (budget {budget:.0f} s)")
        start = time.perf_counter()
        try:
            stage.detail = fn(stage, start + budget) or {}
            stage.status = "ok"
        except StageTimeout as err:
            stage.status, stage.detail["error"] = "timeout", str(err)
        except Exception as err:  # a broken stage is recorded; the next stage still runs
            stage.status, stage.detail["error"] = "failed", f"{type(err).__name__}: {err}"
        stage.seconds = round(time.perf_counter() - start, 1)
        self.say(f"   {name}: {stage.status} in {stage.seconds:.1f} s" +
                 (f" ({stage.detail['error']})" if "error" in stage.detail else ""))
        self.stages.append(stage)
        self.write_summary()
        return stage

    def pytest(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args]

    # ------------------------------------------------------------------------------------------- stages
    def environment(self, stage: Stage, deadline: float) -> dict:
        import importlib.util

        import torch

        cuda = torch.cuda.is_available()
        info = {"python": platform.python_version(), "torch_version": torch.__version__,
                "cuda_version": torch.version.cuda, "cuda_available": cuda,
                "gpu_name": torch.cuda.get_device_name() if cuda else None,
                "missing_modules": [m for m in OPTIONAL_MODULES if importlib.util.find_spec(m) is None],
                "git_commit": _git_commit()}
        if cuda:
            props = torch.cuda.get_device_properties(0)
            info.update(gpu_memory_gib=round(props.total_memory / 2 ** 30, 1),
                        gpu_capability=f"{props.major}.{props.minor}", bf16_supported=torch.cuda.is_bf16_supported())
        self.info.update(info)
        if not cuda and not self.config.dry_run:
            raise StageFailed("no CUDA device visible to torch; use --dry-run to check the wiring on a CPU")
        return info

    def cuda_tests(self, stage: Stage, deadline: float) -> dict:
        junit = self.parts / "cuda-tests.xml"
        # The dry run checks the selection on one file: collecting the whole suite costs more than it shows.
        target = "tests/test_measure.py" if self.config.dry_run else "tests"
        rc = self.run(self.pytest(target, "-p", "bench.cuda_only", f"--junitxml={junit}", "-o",
                                  "junit_family=xunit1"), deadline - time.perf_counter())
        counts = _junit_counts(junit)
        if not counts.get("tests"):
            raise StageFailed(f"no CUDA test selected (pytest exit {rc})")
        if rc != 0 or counts.get("failures") or counts.get("errors"):
            raise StageFailed(f"pytest exit {rc}, {counts}")
        if not self.config.dry_run and counts.get("skipped"):
            raise StageFailed(f"CUDA tests were skipped on a CUDA machine: {counts}")
        return counts

    def bench_parts(self) -> list[tuple[str, list[str]]]:
        """(name, pytest arguments) per part: one model build per part, parts small enough that a budget cut
        loses little, the most wanted first."""
        c = self.config
        if c.dry_run:
            common = ["--vgg-devices", "cpu", "--vgg-dtypes", "fp32", "--vgg-batch-sizes", "1,2",
                      "--vgg-image-size", "32", "--vgg-width", "0.125", "--vgg-modes", "forward",
                      "--vgg-max-time", "0.01"]
            # One process: the reference and the interleaved test are collected (and skip: torchvision's VGG
            # has no width 0.125), so their options are checked without building a full-width network.
            return [("A-tiny", ["--vgg-archs", "A", "--vgg-reference", "--vgg-ab", *common])]
        common = ["--vgg-devices", "cuda", "--vgg-dtypes", DTYPES, "--vgg-batch-sizes", c.batch_sizes,
                  "--vgg-modes", c.modes, "--vgg-max-time", str(c.max_time)]
        largest = str(max(int(b) for b in c.batch_sizes.split(",")))
        parts = []
        ab = ["--vgg-ab", "-k", "interleaved", *common, "--vgg-batch-sizes", largest, "--vgg-modes", "train_step"]
        for cl in ("off", "on"):
            for impl, extra in (("vggcore", []), ("torchvision", ["--vgg-reference", "-k", "torchvision"])):
                for arch in ARCHS:
                    parts.append((f"{arch}-{impl}-cl_{cl}",
                                  ["--vgg-archs", arch, "--vgg-channels-last", cl, *extra, *common]))
            if cl == "off":  # the drift-free ratio before the channels_last half, which a tight budget may cut
                parts += [(f"{arch}-ab", ["--vgg-archs", arch, *ab]) for arch in ARCHS]
        return parts

    def bench(self, stage: Stage, deadline: float) -> dict:
        done, results = [], {}
        stage.detail["parts"] = results  # filled as parts finish, so a failure keeps what was measured
        for name, args in self.bench_parts():
            path = self.parts / f"bench-{name}.json"
            left = deadline - time.perf_counter()
            try:
                rc = self.run(self.pytest("bench", "--benchmark-only", f"--benchmark-json={path}", *args), left)
                # pytest-benchmark writes no file when every case skipped
                results[name] = "ok" if rc == 0 else f"failed (pytest exit {rc})"
            except StageTimeout as err:
                results[name] = f"timeout ({err})"
            if path.exists():
                done.append(path)
            self.say(f"   bench {name}: {results[name]}")
        stage.detail["cases"] = merge_bench(done, self.out / "bench.json")
        if not all(v == "ok" for v in results.values()):
            raise StageFailed(f"{sum(v != 'ok' for v in results.values())} of {len(results)} parts not ok")
        return stage.detail

    def train(self, stage: Stage, deadline: float) -> dict:
        c = self.config
        runs = {"fp32": []} if c.dry_run else {"fp32": [], "bf16_channels_last": ["--bf16", "--channels-last"]}
        # dry run: synthetic data (358 training images) for one epoch, the fastest path through the same CLI
        dataset, width, epochs = ("synthetic", "0.125", "1") if c.dry_run else ("digits", "0.25", str(c.epochs))
        detail = stage.detail  # filled run by run, so a later failure keeps the earlier run's figures
        for name, extra in runs.items():
            out = self.parts / f"train-{name}"
            shutil.rmtree(out, ignore_errors=True)  # a rerun measures again rather than resuming
            rc = self.run([sys.executable, "-m", "vggcore", "train", "--device", c.device, "--arch", "A",
                           "--batch-norm", "--dataset", dataset, "--image-size", "32", "--width", width,
                           "--epochs", epochs, "--batch-size", "64", "--out", str(out), "--quiet", *extra],
                          deadline - time.perf_counter())
            if rc != 0:
                raise StageFailed(f"training {name} exited {rc}")
            metrics = json.loads((out / "metrics.json").read_text())
            history = metrics["history"]
            steady = history[1:] or history  # the first epoch pays for start-up
            detail[name] = {"command_args": extra, "status": metrics["status"], **(metrics["final"] or {}),
                            "images_per_s": round(sum(h["images_per_s"] for h in steady) / len(steady), 1)}
        return detail

    def report(self, stage: Stage, deadline: float) -> dict:
        bench = self.out / "bench.json"
        if not bench.exists():
            raise StageFailed("no bench.json: the bench stage measured nothing")
        folder = self.out / "report"
        rc = self.run([sys.executable, "-m", "reports", "build", "--bench", str(bench), "--out", str(folder)],
                      deadline - time.perf_counter())
        if rc != 0:
            raise StageFailed(f"reports build exited {rc}")
        text = (folder / "report.md").read_text()
        (self.out / "report.md").write_text(re.sub(r"\]\((figures|tables)/", r"](report/\1/", text))
        copied = []
        for name in KEY_FIGURES:
            if (folder / "figures" / name).exists():
                shutil.copy(folder / "figures" / name, self.out / name)
                copied.append(name)
        return {"report": "report.md", "figures": copied}

    # ------------------------------------------------------------------------------------------- driver
    def write_summary(self) -> dict:
        summary = {"check": "gpu-check", "dry_run": self.config.dry_run, "config": _jsonable(asdict(self.config)),
                   **self.info, "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
                   "seconds": round(time.time() - self.started, 1),
                   "ok": bool(self.stages) and all(s.status == "ok" for s in self.stages),
                   "stages": [asdict(s) for s in self.stages]}
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        return summary

    def prepare(self) -> None:
        """An empty output folder, stale results of an earlier check removed; one line when it cannot be."""
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            for stale in ["bench.json", "report.md", "summary.json", "gpu-check.log", *KEY_FIGURES]:
                (self.out / stale).unlink(missing_ok=True)
            shutil.rmtree(self.parts, ignore_errors=True)
            self.parts.mkdir()
        except OSError as err:
            raise FolderNotWritable(f"cannot write to --out {self.out}: {err.strerror or err}") from None

    def main(self) -> int:
        self.prepare()
        budget = self.config.budget_s
        self.say(f"gpu-check{' --dry-run' if self.config.dry_run else ''}: output in {self.out}, budget {budget:.0f} s")
        self.stage("environment", self.environment, 30)
        for name, fn in (("cuda_tests", self.cuda_tests), ("bench", self.bench), ("train", self.train),
                         ("report", self.report)):
            self.stage(name, fn, SHARES[name] * budget)
        summary = self.write_summary()
        self.say(f"gpu-check {'passed' if summary['ok'] else 'FAILED'} in {summary['seconds']:.0f} s: "
                 + ", ".join(f"{s.name} {s.status}" for s in self.stages) + f"; see {self.out / 'summary.json'}")
        return 0 if summary["ok"] else 1


def merge_bench(paths: list[Path], target: Path) -> int:
    """One pytest-benchmark JSON from several runs' files: the first file's header, every file's benchmarks."""
    merged = None
    for path in paths:
        data = json.loads(path.read_text())
        if merged is None:
            merged = data
        else:
            merged["benchmarks"] += data["benchmarks"]
    if merged is None:
        return 0
    target.write_text(json.dumps(merged, indent=1) + "\n")
    return len(merged["benchmarks"])


def _junit_counts(path: Path) -> dict:
    if not path.exists():
        return {}
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    return {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _jsonable(d: dict) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="output folder (default: $OUT when set, else runs/gpu-check)")
    p.add_argument("--dry-run", action="store_true", help="CPU only, tiny sizes: check everything but the GPU")
    p.add_argument("--budget", type=float, default=300.0, metavar="SECONDS",
                   help="whole-check budget; stages get fixed shares of it")
    p.add_argument("--max-time", type=float, default=0.2, metavar="SECONDS",
                   help=f"bench: seconds of timed rounds per case ({MIN_ROUNDS} rounds at least, whatever the time)")
    p.add_argument("--batch-sizes", default="32,256", help="bench: comma-separated batch sizes")
    p.add_argument("--modes", default="forward,train_step", help="bench: forward, forward_backward, train_step")
    p.add_argument("--epochs", type=int, default=10, help="train: epochs on digits")


def config_from_args(args: argparse.Namespace) -> CheckConfig:
    """The check's configuration; a bad option is a one-line UserError naming it."""
    sizes = args.batch_sizes.split(",")
    if not all(s.strip().isdigit() and int(s) > 0 for s in sizes):
        raise UsageError(f"--batch-sizes: {args.batch_sizes!r} is not a list of positive integers")
    number(0, low_open=True)("--budget", args.budget)
    number(0, low_open=True)("--max-time", args.max_time)
    integer(1)("--epochs", args.epochs)
    out = Path(args.out or os.environ.get("OUT") or ROOT / "runs" / "gpu-check")
    return CheckConfig(out=out, dry_run=args.dry_run, budget_s=args.budget, max_time=args.max_time,
                       batch_sizes=args.batch_sizes, modes=args.modes, epochs=args.epochs)


def run_from_args(args: argparse.Namespace) -> int:
    return Check(config_from_args(args)).main()
