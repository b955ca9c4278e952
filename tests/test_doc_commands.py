"""The documented commands are tests: every command README.md and docs/*.md show in a fenced code block, and
every fenced `python` example, runs end to end in a subprocess the way a user types it (through bash, from a
checkout, progress bars and normal output on, no --quiet unless the page writes it).

The commands are read from the pages when the tests run, so a command added to a page is walked or, if COMMANDS
below does not list it, fails `test_every_documented_command_is_in_the_table` with the line to add. COMMANDS is the
one table of what the walk changes: options appended (only where the written form takes more than a few seconds,
and always after the written options, so the written ones are still parsed), placeholders and paths substituted,
or "not run" with the reason; WALK_ENV the environment variables the walk sets, with theirs. One test per page, or
per part of a long page (SPLITS, where a part reads nothing the lines above it make; the heaviest parts start first
so that `./dev test`'s two processes end together): the commands run in order in one fresh folder that looks like
a checkout (the repository's top-level entries linked in), so a command that reads an earlier command's output
(train then resume, run then status and export) finds it. `vggbench` is this checkout's (a shim running
`python -m vggbench`), and each command's wall and CPU seconds are printed (`-rA` or `-s` shows them). A command
fails its page on a non-zero exit (unless the table expects another code), on a traceback in its output, or on a
usage error (a renamed option).
Servers (mlflow ui, tensorboard) are started on a free loopback port, probed over HTTP and stopped, on one page
each (SERVER_PAGE).

Run: pytest -m commands tests/test_doc_commands.py (`./dev test` runs it as its own step, after the suite).
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from doc_blocks import block_lines, fenced_blocks

pytestmark = pytest.mark.commands

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md"))]
SHELL_BLOCKS = {"bash", "sh", "shell", "console"}
# The programs a line of a text or unlabelled block may start with to be a command (other lines are output).
PROGRAMS = {"vggbench", "python", "python3", "pytest", "./dev", "torchrun", "tox", "pip", "ray", "mlflow",
            "tensorboard", "chromium"}
LINKED = ["ablations", "bench", "vggcore", "reports", "tests", "dev", "pyproject.toml", "tox.ini"]
COPIED = ["vggbench"]   # copied, not linked: `./dev gpu-check --dry-run` writes runs/ beside the package's own folder
TIMEOUT = 600   # seconds per command: a hung command fails its page instead of the whole step


@dataclass(frozen=True)
class Shown:
    """One command (or python example) as a page shows it."""
    doc: str     # page, relative to the repository
    line: int    # 1-based line of the page
    text: str    # the command, its trailing comment dropped and its spaces collapsed; "python: FIRST LINE" for code
    code: str = ""   # the body of a fenced python block


def _program(line: str) -> str:
    return re.sub(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)+", "", line).split(" ", 1)[0]


def shown(doc: Path) -> list[Shown]:
    """The page's commands and python examples, in page order."""
    rel, found = str(doc.relative_to(ROOT)), []
    for lang, first, body in fenced_blocks(doc.read_text()):
        if lang == "python":
            found.append(Shown(rel, first, "python: " + body.splitlines()[0].strip(), body))
            continue
        if lang not in SHELL_BLOCKS | {"text", ""}:
            continue
        for number, line in block_lines(first, body):
            line = re.sub(r"\s+#.*$", "", line).strip()          # a trailing comment (a URL's /#/ stays)
            if not line or line.startswith("#"):
                continue
            if lang in SHELL_BLOCKS or _program(line) in PROGRAMS:
                found.append(Shown(rel, number, " ".join(line.split())))
    return found


@dataclass(frozen=True)
class Plan:
    """What the walk does with one documented command."""
    append: str = ""       # options appended after the written ones
    subst: tuple[tuple[str, str], ...] = ()   # (as written, what runs instead), besides PLACEHOLDERS
    why: str = ""          # why the options or substitutions (empty when the command runs as written)
    skip: str = ""         # not run: the reason
    server: bool = False   # a server that never exits: started on a free port ({port}), probed, stopped
    code: int = 0          # the exit code the written form has
    before: str = ""       # run first (quietly), for a command that reads what an unwalked command makes
    again: bool = False    # run every time the page shows it (else a line the page repeats is walked once)


# Placeholders the pages write for "your own": what the walk gives instead (made in each page's folder).
PLACEHOLDERS = {
    "STUDY.toml": "tiny.toml",       # tests/tiny_study.py's study: VGG-A BN at width 0.125, 32 px, 2 runs, 1 epoch
    "DIR": "runs/dir",
    "~/data": "cifar",               # a CIFAR-10 python-format folder, 8 random images per batch file
    "OLD.json": "old.json",          # tests/fixtures' stored benchmark JSON, twice: the same figures on both sides
    "NEW.json": "new.json",
    **{f"{side}{i}.json": f"{side}{i}.json" for side in "ab" for i in (1, 2, 3)},
}

# Small benchmark cases: the written grids run 224 px VGGs at width 1 for about 2 s per case.
SMALL_BENCH = "--vgg-width 0.125 --vgg-image-size 32 --vgg-max-time 0.05"
SMALL_WHY = "224 px, width 1 and 2 s per case take minutes; 32 px, width 0.125, 0.05 s per case"
# A profiled case: its 6 profiled rounds (each beside an unprofiled one) are 2, still a median and its spread.
SMALL_PROFILE = SMALL_BENCH + " --vgg-profile-rounds 2"
PROFILE_WHY = SMALL_WHY + "; 2 profiled rounds per case, not 6"
TTA_WHY = "5 seeds of A_bn at width 0.5 to 97% take 40-90 s; 1 timed seed at width 0.125 to 50% in at most 1 epoch"
SMALL_TTA = "--vgg-tta-seeds 1 --vgg-tta-epochs 1 --vgg-target 50% --vgg-width 0.125"
NO_GPU = "needs a CUDA GPU (tests/test_gpu_check.py runs its CPU-only parts; `./dev gpu-check --dry-run` is walked)"
DEMO = "the main job (minutes): tests/test_demo.py runs it end to end"
SUITE = "runs the test suite or a part of it: the suite step of ./dev test runs every test"
RAY_LOOPBACK = ("starts Ray nodes in the background (10-20 s each) and `ray stop` stops every Ray on the machine, "
                "other suites' too; tests/test_ray_cluster.py walks the same steps: a cluster on 127.0.0.1 joined "
                "by `vggbench study run --executor ray --ray-address`")
SHRUNK = ("the study file at seeds [0], 1 epoch, width 0.125, 32 px (tests/test_doc_commands.py shrunk()): the "
          "written one ")

COMMANDS: dict[str, Plan] = {
    # README.md
    "./dev demo": Plan(skip=DEMO),
    "./dev test": Plan(skip=SUITE),
    "mlflow ui --backend-store-uri sqlite:///mlflow.db": Plan(server=True, append="--port {port}",
                                                              why="a free port: 5000 may be in use"),
    "tensorboard --logdir tb": Plan(server=True, append="--port {port}", why="a free port: 6006 may be in use"),
    # docs/ablations.md
    "vggbench study list ablations/studies/dropout.toml": Plan(),
    "vggbench study run ablations/studies/demo.toml --out runs/ab": Plan(
        subst=(("ablations/studies/demo.toml", "demo.toml"),), why=SHRUNK + "trains 15 runs for minutes"),
    "vggbench study run STUDY.toml --out DIR --workers 2": Plan(),
    "vggbench study run STUDY.toml --out DIR --executor ray --ray-address ADDR": Plan(skip=RAY_LOOPBACK),
    "vggbench study status runs/ab": Plan(),
    "vggbench study list STUDY.toml --out DIR": Plan(),
    "vggbench study run STUDY.toml --out DIR --until-decided --max-seeds 10 --min-effect 0.03": Plan(
        append="--max-seeds 3", why="a cap of 10 seeds trains up to 18 more runs; 3 adds two seeds"),
    "vggbench study run STUDY.toml --out DIR --track mlflow:sqlite:///mlflow.db": Plan(),
    "vggbench study export DIR --mlflow sqlite:///mlflow.db --tensorboard tb": Plan(),
    "vggbench demo --out runs/demo": Plan(skip=DEMO),
    "vggbench demo --out runs/demo --max-seeds 6": Plan(skip=DEMO),
    "python -m ablations.calibration --part min_effect --studies 4000 --max-seeds 8": Plan(
        append="--studies 200", why="4000 simulated studies take minutes; 200"),
    "pytest tests/test_stats_calibration.py -s": Plan(skip=SUITE),
    "python -m ablations.calibration --studies 20000 --part adaptive": Plan(
        append="--studies 200", why="20000 simulated studies take minutes; 200"),
    # docs/benchmarks.md
    "pytest bench --benchmark-only": Plan(append=SMALL_BENCH + " --vgg-batch-sizes 1", why=SMALL_WHY),
    "pytest bench --benchmark-only --vgg-reference": Plan(
        append=SMALL_BENCH + " --vgg-archs A --vgg-batch-sizes 1", why=SMALL_WHY + ", A only"),
    "pytest bench --benchmark-only --vgg-dtypes fp32,bf16 --vgg-channels-last off,on --vgg-compile off,on": Plan(
        append=SMALL_BENCH + " --vgg-archs A --vgg-batch-sizes 1 --vgg-modes forward --vgg-dtypes fp32 "
                             "--vgg-channels-last off",
        why=SMALL_WHY + "; A, fp32, forward only, compile off and on: torch.compile compiles each case (20 s or more)"),
    "pytest bench --benchmark-only --vgg-ab --vgg-archs A --vgg-batch-sizes 8": Plan(append=SMALL_BENCH, why=SMALL_WHY),
    "pytest bench --benchmark-only --vgg-ab-against dtype=bf16,channels_last=on --vgg-archs A": Plan(
        append=SMALL_BENCH + " --vgg-batch-sizes 1", why=SMALL_WHY),
    "pytest bench --benchmark-only --benchmark-json out.json": Plan(
        append=SMALL_BENCH + " --vgg-archs A --vgg-batch-sizes 1", why=SMALL_WHY),
    "pytest bench --benchmark-only --vgg-profile --vgg-archs A --benchmark-json p.json": Plan(
        append=SMALL_PROFILE + " --vgg-batch-sizes 1", why=PROFILE_WHY),
    'python -c "from vggcore.peaks import matmul_peak_flops as m; print(m(\'cpu\', \'fp32\', n=1024) / 1e9, '
    'm(\'cpu\', \'bf16\', n=1024) / 1e9)"': Plan(
        subst=(("n=1024) / 1e9)", "n=1024, repeats=1) / 1e9)"),),
        why="the best of 5 bf16 1024^3 matmuls after a warm-up: 14 s where bf16 has no fast path (AVX2); the best of 1"),
    "pytest bench --benchmark-only --vgg-archs A,D_bn --vgg-width 0.5 --vgg-image-size 64 --vgg-batch-sizes 32 "
    "--vgg-max-time 0.2 --vgg-devices cpu --vgg-dtypes fp32,bf16": Plan(
        append="--vgg-width 0.125 --vgg-image-size 32 --vgg-batch-sizes 4 --vgg-max-time 0.05",
        why="D_bn at width 0.5, 64 px, batch 32: about a minute; width 0.125, 32 px, batch 4"),
    "vggbench report compare OLD.json NEW.json": Plan(),
    "vggbench report compare --old a1.json a2.json a3.json --new b1.json b2.json b3.json --fail-on-inconclusive":
        Plan(code=1, why="the stored figures, three runs a side, are inconclusive, which this option makes exit 1"),
    "vggbench report compare OLD.json NEW.json --threshold 5%": Plan(),
    # docs/development.md
    "./dev test tests/test_reports.py -x": Plan(skip=SUITE),
    './dev test -m "not slow"': Plan(skip=SUITE),
    "./dev test -n 0 tests/test_train.py": Plan(skip=SUITE),
    "tox -e test": Plan(skip="tox builds its own virtual environment from PyPI (minutes, network); " + SUITE),
    "tox -e demo": Plan(skip="tox builds its own virtual environment from PyPI (minutes, network); " + DEMO),
    "tox -e bench": Plan(skip="tox builds its own virtual environment from PyPI (minutes, network); the benchmark "
                              "grid it runs is walked as `pytest bench --benchmark-only` (docs/benchmarks.md)"),
    # docs/evaluation.md
    "vggbench train --arch A --batch-norm --width 0.25 --dataset digits --out runs/a --eval dense "
    "--eval multicrop": Plan(append="--width 0.125 --epochs 1",
        why="10 epochs at width 0.25, then the test split scored view by view; width 0.125, 1 epoch"),
    "vggbench evaluate runs/a --protocol dense --scales multi": Plan(),
    "vggbench evaluate runs/a --protocol multicrop --crops 3 --no-flip": Plan(),
    "vggbench study run ablations/studies/protocols.toml --out runs/protocols": Plan(
        subst=(("ablations/studies/protocols.toml", "protocols.toml"),),
        why=SHRUNK + "trains five runs of 8 epochs at 64 px"),
    "vggbench report build --ablations runs/protocols --out report": Plan(),
    "vggbench evaluate RUN_DIR --protocol dense [--scales single|multi|Q1,Q2,...] [--flip] [--crops G] "
    "[--device cuda]": Plan(skip="a synopsis, not a command: each of its options is walked in the lines above"),
    "vggbench train --dataset digits --batch-norm --width 0.25 --out runs/a --eval dense --eval "
    "centre:multi --eval multicrop:37:noflip:crops=3": Plan(append="--width 0.125 --epochs 1",
        why="10 epochs at width 0.25, then the test split scored view by view; width 0.125, 1 epoch"),
    "vggbench report build --ablations runs/protocols --out runs/protocols-report": Plan(),
    # docs/gpu.md
    "./dev gpu-check": Plan(skip=NO_GPU),
    "./dev gpu-check --budget 420 --max-time 0.3 --batch-sizes 16,64,256": Plan(skip=NO_GPU),
    "./dev gpu-check --dry-run": Plan(),
    "PYTHON=/opt/conda/bin/python ./dev gpu-check --out /tmp/gpu-check": Plan(skip=NO_GPU),
    "OUT=docs/gpu/gpu-check ./dev gpu-check": Plan(skip=NO_GPU),
    # docs/model.md
    "python: import torchvision": Plan(),   # docs/model.md's example
    "vggbench list": Plan(),
    "vggbench summary D --format markdown": Plan(),
    "vggbench summary vgg16_bn --image-size 32 --width 0.25": Plan(),
    # docs/profile.md
    "vggbench profile A --batch-size 8": Plan(
        append="--image-size 32 --width 0.125 --rounds 2", why="224 px at width 1, 6 rounds: about 50 s"),
    "vggbench profile D --batch-size 8 --dtype bf16 --channels-last": Plan(
        append="--image-size 32 --width 0.125 --rounds 2", why="224 px at width 1, 6 rounds: minutes"),
    "vggbench profile A --mode forward --layers conv3x3 --format csv": Plan(
        append="--image-size 32 --width 0.125 --rounds 2", why="224 px at width 1, 6 rounds: about 20 s"),
    "vggbench profile A --image-size 32 --width 0.25 --optimizer fused --format json": Plan(),
    "pytest bench --benchmark-only --vgg-profile --vgg-archs A --vgg-batch-sizes 8 --vgg-modes train_step "
    "--vgg-dtypes fp32,bf16 --vgg-channels-last off,on --benchmark-json profile.json": Plan(
        append=SMALL_PROFILE, why=PROFILE_WHY),
    "pytest bench --benchmark-only --vgg-profile-layers conv3x3,optimizer --vgg-archs A --benchmark-json "
    "profile.json": Plan(append=SMALL_PROFILE + " --vgg-batch-sizes 1", why=PROFILE_WHY),
    "vggbench report build --bench profile.json --out report": Plan(),
    "vggbench profile A --image-size 32 --width 0.125 --batch-size 2 --dtype bf16 --rounds 2": Plan(),
    "pytest bench --benchmark-only --vgg-archs A --vgg-batch-sizes 8 --vgg-modes train_step --vgg-optimizer "
    "for-loop --vgg-ab-against optimizer=foreach --vgg-max-time 20": Plan(
        append=SMALL_BENCH, why="20 s per side at 224 px; " + SMALL_WHY),
    "pytest bench --benchmark-only --vgg-archs A --vgg-batch-sizes 8 --vgg-modes train_step --vgg-optimizer "
    "for-loop --vgg-ab-against optimizer=fused --vgg-max-time 20": Plan(
        append=SMALL_BENCH, why="20 s per side at 224 px; " + SMALL_WHY),
    "pytest bench --benchmark-only --vgg-profile --vgg-archs A --vgg-batch-sizes 8 --vgg-modes forward,train_step "
    "--vgg-dtypes fp32 --vgg-channels-last off,on --vgg-max-time 8 --benchmark-json profile.json": Plan(
        append=SMALL_PROFILE, why="8 s per case at 224 px; " + PROFILE_WHY),
    # docs/ray.md
    "vggbench study run STUDY.toml --out runs/demo --executor ray": Plan(),
    "vggbench study run STUDY.toml --out /shared/runs/demo --executor ray --ray-address HEAD:6379": Plan(
        skip="needs a cluster of several machines and a shared filesystem; " + RAY_LOOPBACK),
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 ray start --head --port 6379 --num-cpus 2 --include-dashboard false":
        Plan(skip=RAY_LOOPBACK),
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_AUTH_MODE=token vggbench study run STUDY.toml --out runs/demo "
    "--executor ray --ray-address 127.0.0.1:6379": Plan(skip=RAY_LOOPBACK),
    "ray stop": Plan(skip=RAY_LOOPBACK),
    # docs/reports.md
    "vggbench report build --bench runs/demo/bench.json .benchmarks --ablations runs/demo/ablations --out report":
        Plan(skip="reads ./dev demo's folder: " + DEMO + " and builds this report"),
    "vggbench report build --ablations runs/ab --out report --min-effect 0.01 --correction bh": Plan(
        before="vggbench study run tiny.toml --out runs/ab --quiet", why="runs/ab: the tiny study, run first"),
    "vggbench demo --bench-args --vgg-width 0.125": Plan(skip=DEMO),
    "vggbench demo --rerun-bench": Plan(skip=DEMO),
    # docs/statistics.md
    "python -m ablations.calibration --studies 20000": Plan(
        append="--studies 100", why="20000 simulated studies of every part take many minutes; 100"),
    "python -m ablations.calibration --part paired --studies 20000": Plan(
        append="--studies 100", why="20000 simulated studies per cell take about 25 minutes; 100"),
    'python -c "from ablations.calibration.calibrate import paired_levels_table; '
    'print(paired_levels_table(200_000))"': Plan(
        skip="200,000 simulated studies a row (about a minute), in code that takes no size option; the same "
             "function runs at 100 studies in `--part paired` above, and tests/test_paired_decisions.py checks "
             "the paired levels' crossing rate at 40,000"),
    'python -c "from reports.load import load_ablations; from ablations.paired import seed_pairs; '
    "print(seed_pairs(load_ablations(['DIR']).runs, 'test_top1_error'))\"": Plan(),
    # docs/time-to-accuracy.md
    "pytest bench --benchmark-only --vgg-modes time_to_accuracy --benchmark-json tta.json": Plan(
        append=SMALL_TTA, why=TTA_WHY),
    "pytest bench --benchmark-only --vgg-modes time_to_accuracy --vgg-channels-last off,on --benchmark-json "
    "tta.json": Plan(append=SMALL_TTA, why=TTA_WHY),
    "pytest bench --benchmark-only --vgg-modes time_to_accuracy --vgg-target 98% --vgg-tta-seeds 10": Plan(
        append="--vgg-tta-seeds 1 --vgg-tta-epochs 1 --vgg-width 0.125",
        why="10 seeds to 98%: minutes; 1 timed seed, 1 epoch, width 0.125"),
    "pytest bench --benchmark-only --vgg-modes time_to_accuracy --vgg-tta-recipe lr=0.05,schedule=constant": Plan(
        append=SMALL_TTA, why=TTA_WHY),
    "pytest bench --benchmark-only --vgg-modes time_to_accuracy --vgg-batch-sizes 32,64 --vgg-width 0.5": Plan(
        append=SMALL_TTA, why=TTA_WHY),
    "pytest bench --benchmark-only --vgg-modes time_to_accuracy --vgg-dataset cifar10 --vgg-data-root ~/data": Plan(
        append=SMALL_TTA, why=TTA_WHY),
    "pytest bench --benchmark-only --vgg-modes time_to_accuracy,train_step --vgg-archs A_bn": Plan(
        append=SMALL_TTA + " " + SMALL_BENCH + " --vgg-batch-sizes 1", why=TTA_WHY + "; " + SMALL_WHY),
    "vggbench report build --bench tta.json --out report": Plan(),
    # docs/tracking.md
    "pip install 'vggbench[mlflow]'": Plan(skip="installs from PyPI (network); ./dev setup installs the extras"),
    "pip install 'vggbench[tensorboard]'": Plan(skip="installs from PyPI (network); ./dev setup installs the extras"),
    "vggbench study export runs/demo/ablations --mlflow sqlite:///mlflow.db --tensorboard tb": Plan(
        before="vggbench study run tiny.toml --out runs/demo/ablations --quiet",
        why="./dev demo's study folder: the tiny study in its place"),
    "vggbench study run STUDY.toml --out runs/study --track mlflow:sqlite:///mlflow.db --track tensorboard:tb":
        Plan(),
    "vggbench study run study.toml --out runs/tracked": Plan(),   # the page's study file above it
    "vggbench study run study.toml --out /tmp/shots/runs --quiet --track mlflow:sqlite:////tmp/shots/mlflow.db "
    "--track tensorboard:/tmp/shots/tb": Plan(skip="the recipe of the page's screenshots (a maintainer's, with "
                                                   "chromium): its store commands are walked above"),
    "mlflow server --backend-store-uri sqlite:////tmp/shots/mlflow.db --host 127.0.0.1 --port 5987 --workers 1 &":
        Plan(skip="the screenshots' recipe; tests/test_tracking.py starts mlflow server and reads its run list"),
    "tensorboard --logdir /tmp/shots/tb --host 127.0.0.1 --port 6123 &": Plan(
        skip="the screenshots' recipe; `tensorboard --logdir tb` is started and probed above"),
    "chromium --headless --no-sandbox --hide-scrollbars --window-size=1400,800 --virtual-time-budget=30000 "
    '--screenshot=docs/mlflow-runs.png "http://127.0.0.1:5987/#/experiments/1/runs"': Plan(
        skip="rewrites docs/mlflow-runs.png; needs chromium and the servers above"),
    "chromium --headless --no-sandbox --hide-scrollbars --window-size=1400,800 --virtual-time-budget=30000 "
    '--screenshot=docs/tensorboard-hparams.png "http://127.0.0.1:6123/#hparams"': Plan(
        skip="rewrites docs/tensorboard-hparams.png; needs chromium and the servers above"),
    # docs/training.md
    "vggbench train --arch A --batch-norm --width 0.25 --augment crop --lr 0.05 --epochs 20": Plan(
        append="--epochs 1", why="20 epochs; 1"),
    "vggbench train --arch D --dataset cifar10 --data-root ~/data --image-size 32 --augment paper --out "
    "runs/d": Plan(again=True, append="--width 0.125 --epochs 1",
                   why="VGG-D at width 0.25 for 10 epochs; width 0.125, 1 epoch (again: the second line resumes or "
                       "says it is complete)"),
    "vggbench train --arch A --batch-norm --width 0.25 --augment crop --epochs 6 --fast --out runs/fast": Plan(
        append="--epochs 1", why="6 epochs; 1"),
    "torchrun --standalone --nproc_per_node=4 -m vggcore train --arch D --dataset imagefolder --data-root "
    "~/imagenet --image-size 224 --width 1 --batch-size 256 --lr 0.01 --epochs 74 --augment paper --device cuda "
    "--out runs/d": Plan(skip="4 GPUs and ImageNet; the 2-process CPU line below walks the same path"),
    "torchrun --nnodes=2 --nproc_per_node=4 --rdzv-backend=c10d --rdzv-endpoint=HOST:29400 --rdzv-id=vgg16 -m "
    "vggcore train --arch D --device cuda --out /shared/runs/d": Plan(skip="two machines with 4 GPUs each"),
    "torchrun --standalone --nproc_per_node=2 -m vggcore train --arch A --batch-norm --out runs/a2": Plan(
        append="--width 0.125 --epochs 1", why="10 epochs at width 0.25 on 2 processes; width 0.125, 1 epoch"),
}


def documented() -> dict[str, list[Shown]]:
    """Every page's commands, python examples and toml blocks (the latter as `toml` entries, for study.toml)."""
    pages = {}
    for doc in DOCS:
        items = shown(doc)
        for _lang, first, body in (b for b in fenced_blocks(doc.read_text()) if b[0] == "toml"):
            items.append(Shown(str(doc.relative_to(ROOT)), first, "toml", body))
        pages[str(doc.relative_to(ROOT))] = sorted(items, key=lambda s: s.line)
    return pages


PAGES = documented()


def test_every_documented_command_is_in_the_table():
    unlisted = [f"{s.doc}:{s.line}: {s.text!r}" for items in PAGES.values() for s in items
                if s.text != "toml" and s.text not in COMMANDS]
    assert not unlisted, ("commands the docs show that tests/test_doc_commands.py's COMMANDS does not list: add each "
                          "with Plan() (run as written), its appended options and why, or skip= and the reason:\n"
                          + "\n".join(unlisted))
    shown_texts = {s.text for items in PAGES.values() for s in items}
    stale = sorted(set(COMMANDS) - shown_texts)
    assert not stale, f"COMMANDS lists commands no page shows any more (remove them): {stale}"


def test_appended_options_have_a_reason():
    assert [t for t, p in COMMANDS.items() if (p.append or p.subst or p.before) and not p.why and not p.skip] == []


# --- the walk ----------------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shrunk(src: Path, dest: Path) -> None:
    """A study file at seeds [0], 1 epoch, width 0.125 and 32 px: the same factors and levels, seconds to train (a
    multi-crop evaluation costs the square of the image size: protocols.toml's 64 px took 52 s here, 32 px 20 s)."""
    from ablations import load_study

    text, n = src.read_text(), 0
    for pattern, repl in ((r"^seeds = \[[^\]]*\]", "seeds = [0]"), (r"^epochs = \d+", "epochs = 1"),
                          (r"^width = [\d.]+", "width = 0.125"), (r"^image_size = \d+", "image_size = 32")):
        text, k = re.subn(pattern, repl, text, flags=re.M)
        n += k
    dest.write_text(text)
    study = load_study(dest)
    assert study.seeds == [0] or list(study.seeds) == [0], f"{src}: its seeds were not shrunk"
    assert n >= 2, f"{src}: nothing to shrink (the file's layout changed: update shrunk())"


def write_cifar(root: Path) -> None:
    """CIFAR-10's python-format files, 8 random images per batch file (as tests/test_data.py makes them)."""
    import pickle

    import numpy as np

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        batch = {b"data": rng.integers(0, 256, (8, 3072), dtype=np.uint8), b"labels": [(i + j) % 10 for j in range(8)]}
        (folder / name).write_bytes(pickle.dumps(batch))


def checkout(folder: Path) -> None:
    """A folder that looks like a checkout (the repository's entries linked in) plus what the placeholders name."""
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_study import tiny_study

    for name in [*LINKED, ".venv"]:
        if (ROOT / name).exists():
            (folder / name).symlink_to(ROOT / name)
    for name in COPIED:
        shutil.copytree(ROOT / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    write_shim(folder)
    (folder / "tiny.toml").write_text(tiny_study())
    write_cifar(folder / "cifar")
    shrunk(ROOT / "ablations/studies/demo.toml", folder / "demo.toml")
    shrunk(ROOT / "ablations/studies/protocols.toml", folder / "protocols.toml")
    fixture = (ROOT / "tests/fixtures/bench_5687e3f.json").read_text()
    for name in ["old.json", "new.json"] + [f"{side}{i}.json" for side in "ab" for i in (1, 2, 3)]:
        (folder / name).write_text(fixture)


# Environment variables the walk sets, with the reason: each makes one measurement smaller in a way its output says.
WALK_ENV = {
    "VGGBENCH_TRIAD_BYTES": ("64M", "every `vggbench profile` and `pytest bench --vgg-profile` measures the memory "
                                    "roof by a STREAM triad of 3 arrays of 4x the last-level cache: 3 x 1.9 GiB and "
                                    "about 25 s per triad where sysfs reports a 480 MiB L3; 64 MiB arrays, named as "
                                    "such in the figures (vggcore.profile.roofs)"),
    "VGGBENCH_PEAK_CALL_S": ("0.05", "every benchmark session and profile measures the machine's peak by matmuls "
                                     "and convolutions grown while one call takes under 0.5 s: about 7 s on one "
                                     "thread of an AVX2 CPU, in each of the walk's 20-odd sessions; under 0.05 s, "
                                     "about 1 s, the kernels named in the figures (vggcore.peaks)"),
}


def walk_threads(workers: int) -> int:
    """The walk's commands' torch threads, OMP_NUM_THREADS unless the caller set it: the walk's `workers` test
    processes share the cores as tests/conftest.py shares them between the suite's (at most 2 each). Two walkers of 2
    threads each on 2 cores spin against each other: a time-to-accuracy session took 18.8 s of CPU on 2 threads,
    7.2 s on 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(2, cores // workers))


SHIM = "bin"   # the walk's own folder of the `vggbench` command, first on PATH


def write_shim(folder: Path) -> None:
    """`vggbench` as the project's console script runs it (vggbench.cli:main), from this checkout: the venv's own
    script (when an install made one) imports the checkout the venv was installed from, which may be another."""
    script = folder / SHIM / "vggbench"
    script.parent.mkdir()
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m vggbench "$@"\n')
    script.chmod(0o755)


def environment(folder: Path, workers: int = 1) -> dict[str, str]:
    """The user's shell: the walk's `vggbench` (write_shim) and the project's environment first on PATH, this
    checkout importable, no pytest-xdist variables leaking into a `pytest bench` the walk starts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env["PATH"] = os.pathsep.join([str(folder / SHIM), str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    env.update({name: value for name, (value, _why) in WALK_ENV.items()})
    env.setdefault("OMP_NUM_THREADS", str(walk_threads(workers)))
    return env


def as_run(item: Shown, plan: Plan, port: int) -> str:
    """The command line the walk types: substitutions, placeholders, appended options."""
    text = item.text
    for written, instead in plan.subst:
        assert written in text, f"{item.text!r}: substitution {written!r} no longer applies"
        text = text.replace(written, instead)
    for written, instead in PLACEHOLDERS.items():
        text = re.sub(rf"(?<![\w/.]){re.escape(written)}(?![\w.])", instead, text)
    return f"{text} {plan.append.format(port=port)}".strip()


def run_server(line: str, folder: Path, env: dict, port: int) -> str:
    """Start a server that never exits, wait until it answers HTTP on 127.0.0.1:port, stop it. '' or a problem."""
    proc = subprocess.Popen(["bash", "-c", f"exec {line}"], cwd=folder, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    problem, deadline = "", time.time() + 90
    try:
        while True:
            if proc.poll() is not None:
                problem = f"exited with {proc.returncode} before it answered on port {port}"
                break
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as reply:
                    if reply.status != 200:
                        problem = f"answered HTTP {reply.status}"
                    break
            except OSError:
                if time.time() > deadline:
                    problem = f"did not answer on port {port} within 90 s"
                    break
                time.sleep(0.5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)   # its own session: the server and the workers it started
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        output = proc.stdout.read()
    if not problem and "Traceback (most recent call last)" in output:
        problem = "printed a traceback"
    return f"{problem}\n{output[-3000:]}" if problem else ""


def _children_cpu() -> float:
    """CPU seconds (user + system) of the processes this one has waited for: a command's own cost, which a busy
    machine's wall time hides."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def walk(items: list[Shown], folder: Path, workers: int = 1) -> tuple[list[str], list[str]]:
    """Run these commands in order in `folder` (`workers`: the walk's test processes): (failures, one line per
    command: wall and CPU seconds)."""
    env, failures, timings, study = environment(folder, workers), [], [], ""
    for item in items:
        if item.text == "toml":
            study = item.code
            continue
        plan = COMMANDS[item.text]
        where = f"{item.doc}:{item.line}"
        if plan.before:
            done = subprocess.run(["bash", "-c", plan.before], cwd=folder, env=env, capture_output=True, text=True)
            assert done.returncode == 0, f"{where}: the set-up `{plan.before}` failed:\n{done.stderr[-3000:]}"
        if "study.toml" in item.text:
            (folder / "study.toml").write_text(study)   # the study file the page shows above the command
        port = _free_port()
        start, cpu = time.perf_counter(), _children_cpu()
        if item.text.startswith("python: "):
            (folder / "example.py").write_text(item.code)
            line = "python example.py"
        else:
            line = as_run(item, plan, port)
        if plan.server:
            problem = run_server(line, folder, env, port)
        else:
            try:
                done = subprocess.run(["bash", "-c", line], cwd=folder, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT)
                output, code = done.stdout, done.returncode
            except subprocess.TimeoutExpired as err:
                output, code = (err.stdout or b"").decode(errors="replace") if isinstance(err.stdout, bytes) \
                    else (err.stdout or ""), f"timeout after {TIMEOUT} s"
            problem = ""
            if code != plan.code:
                problem = f"exit {code} (expected {plan.code})"
            elif "Traceback (most recent call last)" in output:
                problem = "printed a traceback"
            if problem:
                problem += "\n" + output[-4000:]
        seconds, cpu = time.perf_counter() - start, _children_cpu() - cpu
        timings.append(f"{seconds:6.1f} s {cpu:6.1f} s cpu  {where}  {line}")
        if problem:
            failures.append(f"{where}: `{line}`: {problem}")
    return failures, timings


# A server several pages show is started on one of them, the last (README.md comes first): the same command on
# the same port-less line is the same check, and `mlflow ui` takes about 20 s to start. No command reads a server.
SERVER_PAGE = {s.text: page for page, items in PAGES.items() for s in items
               if s.text in COMMANDS and COMMANDS[s.text].server}


def to_walk(page: str) -> list[Shown]:
    """The page's items the walk runs, in order: its toml blocks and its commands less the skipped ones, the
    lines it repeats (the same check again, unless the table says `again`) and the servers another page starts."""
    kept, walked = [], set()
    for item in PAGES[page]:
        if item.text != "toml":
            plan = COMMANDS.get(item.text, Plan(skip="not in COMMANDS: test_every_documented_command_is_in_the_table"))
            if plan.skip or (item.text in walked and not plan.again) or SERVER_PAGE.get(item.text, page) != page:
                continue
            walked.add(item.text)
        kept.append(item)
    return kept


# Pages cut into parts that run as tests of their own, so that the two test processes of `./dev test` share the
# long pages: a part starts at each command named here, which reads nothing that the commands above it make (its
# inputs are the folder's own: the placeholders' files, the shrunk study files, the stored benchmark JSON). Every
# part gets a fresh folder and the last toml block above it.
SPLITS: dict[str, tuple[str, ...]] = {
    "docs/benchmarks.md": (   # out.json and p.json are read by no later command; compare reads the stored JSON
        "pytest bench --benchmark-only --vgg-ab --vgg-archs A --vgg-batch-sizes 8",
        "pytest bench --benchmark-only --benchmark-json out.json",
        "pytest bench --benchmark-only --vgg-archs A,D_bn --vgg-width 0.5 --vgg-image-size 64 --vgg-batch-sizes 32 "
        "--vgg-max-time 0.2 --vgg-devices cpu --vgg-dtypes fp32,bf16"),
    "docs/time-to-accuracy.md": (   # the report reads tta.json of the line after the first: both stay together
        "pytest bench --benchmark-only --vgg-modes time_to_accuracy --vgg-channels-last off,on --benchmark-json "
        "tta.json",),
    "docs/profile.md": (   # the report reads profile.json of the line above it, so those two stay together
        "vggbench profile A --mode forward --layers conv3x3 --format csv",
        "pytest bench --benchmark-only --vgg-profile --vgg-archs A --vgg-batch-sizes 8 --vgg-modes train_step "
        "--vgg-dtypes fp32,bf16 --vgg-channels-last off,on --benchmark-json profile.json",
        "vggbench profile A --image-size 32 --width 0.125 --batch-size 2 --dtype bf16 --rounds 2",
        "pytest bench --benchmark-only --vgg-profile --vgg-archs A --vgg-batch-sizes 8 --vgg-modes forward,train_step "
        "--vgg-dtypes fp32 --vgg-channels-last off,on --vgg-max-time 8 --benchmark-json profile.json"),
    "docs/ablations.md": (   # the calibrations simulate; the study commands above them share runs/ab and DIR
        "python -m ablations.calibration --part min_effect --studies 4000 --max-seeds 8",),
    "docs/statistics.md": (   # three simulations, then a study whose folder the python line reads
        "python -m ablations.calibration --part min_effect --studies 4000 --max-seeds 8",
        "python -m ablations.calibration --part paired --studies 20000",
        "vggbench study run STUDY.toml --out DIR --workers 2"),
    "docs/evaluation.md": (   # the protocols study makes its own runs/protocols; the later runs/a trains anew
        "vggbench study run ablations/studies/protocols.toml --out runs/protocols",),
    "docs/training.md": (   # runs/d's two lines (train, then resume) stay together; the other runs are their own
        "vggbench train --arch D --dataset cifar10 --data-root ~/data --image-size 32 --augment paper --out runs/d",
        "vggbench train --arch A --batch-norm --width 0.25 --augment crop --epochs 6 --fast --out runs/fast",
        "torchrun --standalone --nproc_per_node=2 -m vggcore train --arch A --batch-norm --out runs/a2"),
    "docs/tracking.md": (   # the servers read the stores the export above them wrote; each study its own
        "vggbench study run STUDY.toml --out runs/study --track mlflow:sqlite:///mlflow.db --track tensorboard:tb",
        "vggbench study run study.toml --out runs/tracked"),
}


def parts(page: str) -> list[list[Shown]]:
    """The page's walk (to_walk) cut at its SPLITS, each part led by the toml block in force where it starts."""
    cuts, found, study = set(SPLITS.get(page, ())), [[]], None
    for item in to_walk(page):
        if item.text in cuts and any(i.text != "toml" for i in found[-1]):
            cuts.discard(item.text)   # a part starts at a line's first walk (runs/d's resume stays with its run)
            found.append([study] if study else [])
        if item.text == "toml":
            study = item
        found[-1].append(item)
    return found


# Rough seconds of a command on one thread of a 2-core AVX2 VM (the walk's printed timings), for the order the parts
# start in: the first pattern that matches, else DEFAULT_SECONDS.
SECONDS = ((r"--executor ray|\./dev gpu-check|^mlflow ", 20), (r"calibration .*--part (?:min_effect|adaptive)", 3),
           (r"^python: |python -m ablations\.calibration", 15),
           (r"vggbench study run", 12), (r"vggbench train|^torchrun", 10), (r"^pytest bench|^python -c", 9),
           (r"vggbench (?:profile|evaluate)", 8), (r"vggbench report build", 5))
DEFAULT_SECONDS = 2


def cost(items: list[Shown]) -> int:
    """A part's rough seconds (SECONDS), for the order the parts start in: the heaviest first, so that the two
    test processes end together."""
    return sum(next((s for pattern, s in SECONDS if re.search(pattern, i.text)), DEFAULT_SECONDS)
               for i in items if i.text != "toml")


def _missing_split(page: str, text: str) -> str:
    return f"{page}: SPLITS names {text!r}, which the page does not walk"


WALKED = sorted(((f"{page}#{n}" if len(cut) > 1 else page, items)
                 for page, cut in ((page, parts(page)) for page in PAGES)
                 for n, items in enumerate(cut, 1) if any(i.text != "toml" for i in items)),
                key=lambda part: -cost(part[1]))


def test_every_split_names_a_walked_command():
    texts = {page: {i.text for i in to_walk(page)} for page in PAGES}
    assert [_missing_split(page, t) for page, cuts in SPLITS.items() for t in cuts
            if t not in texts.get(page, ())] == []


@pytest.mark.parametrize("part", [items for _, items in WALKED], ids=[name for name, _ in WALKED])
def test_the_page_walks(part, tmp_path, request):
    checkout(tmp_path)
    # xdist's worker count (tests/conftest.py removes PYTEST_XDIST_WORKER_COUNT from the environment)
    workers = getattr(request.config, "workerinput", {}).get("workercount", 1)
    failures, timings = walk(part, tmp_path, workers)
    name = part[-1].doc
    print(f"\n{name} (OMP_NUM_THREADS={environment(tmp_path, workers)['OMP_NUM_THREADS']}):\n" + "\n".join(timings))
    assert not failures, f"{len(failures)} documented command(s) of {name} failed:\n\n" + "\n\n".join(failures)
