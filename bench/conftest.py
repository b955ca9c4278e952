"""Options and fixtures of the VGG benchmark suite.

    pytest bench --benchmark-only                                    # quick grid: A and D, every device here
    pytest bench --benchmark-only --vgg-reference                    # torchvision's VGG side by side
    pytest bench --benchmark-only --vgg-dtypes fp32,bf16 --vgg-channels-last off,on --vgg-compile off,on
    pytest bench --benchmark-only --vgg-grid full --vgg-devices cuda # all six configs, batch up to 256
    pytest bench --benchmark-only --benchmark-json out.json          # every figure in extra_info
    pytest bench --benchmark-only --vgg-world-sizes 1,2,4            # data-parallel weak scaling instead
    pytest bench --benchmark-only --vgg-modes time_to_accuracy       # time to 97% on digits, 5 seeds (bench/tta.py)
    pytest bench --benchmark-only --vgg-profile --benchmark-json p.json  # + per-layer profiles (bench/profiling.py)
    pytest bench --benchmark-only --vgg-modes train_step --vgg-optimizer for-loop,foreach,fused
"""

from __future__ import annotations

import pytest

from vggcore.errors import UsageError, UserError
from vggcore.peaks import peak_flops as measure_peak_flops
from vggcore.profile.roofs import check_settings
from vggcore.train.sgd import DEFAULT_SGD, SGD_CHOICES

from . import profiling, session
from .ab import DEFAULT_AGAINST, describe, parse_against
from .cases import GRIDS, MODES, TTA_MODE, expand, selected_modes, switches
from .memory_guard import LIMIT_HELP, parse_limit
from .sampling import UNSTABLE_ADVICE, SamplingRule, rule_from_options
from .scaling import DEFAULT_PER_RANK_BATCH, expand_scaling, world_sizes
from .tta import RECIPE_KEYS, TARGETS, expand_tta


def _per_device(sizes: dict[str, list[int]]) -> str:
    return " / ".join(f"{device} {','.join(map(str, values))}" for device, values in sizes.items())


_RULE = SamplingRule()
OPTIONS = {
    "archs": "architectures, comma-separated (A, A-LRN, B, C, D, E, vgg16_bn, ...); default "
             f"{','.join(GRIDS['quick']['archs'])} (full grid: all six; with --vgg-world-sizes: A)",
    "batch-sizes": "batch sizes, comma-separated positive integers; default per device, quick grid: "
                   f"{_per_device(GRIDS['quick']['batch_sizes'])}; full grid: {_per_device(GRIDS['full']['batch_sizes'])}"
                   f"; with --vgg-world-sizes, per rank: {_per_device({k: [v] for k, v in DEFAULT_PER_RANK_BATCH.items()})}",
    "image-size": "square input side in pixels, a multiple of 32 (default 224)",
    "devices": "cpu, cuda, mps, comma-separated; default every available one",
    "dtypes": "fp32, bf16, fp16 (the latter two under autocast); default fp32 (full grid: all)",
    "modes": f"{', '.join(MODES)}; default all three; {TTA_MODE} runs the time-to-accuracy benchmark (bench/tta.py), "
             "whose defaults are its own: A_bn, fp32, 32px, the dataset's recipe",
    "width": "channel and FC-width multiplier (default 1, the paper's VGG)",
    "head": "vggcore's head: paper (default), torchvision (AdaptiveAvgPool2d 7x7, torchvision's ops) or gap",
    "grid": "quick (default) or full: all six configurations, batch sizes up to 256, every dtype",
    "max-time": f"seconds of timed rounds per case (default {_RULE.max_time:g}); at least {_RULE.min_rounds} rounds "
                "always run",
    "optimizer": f"SGD implementations of the train_step cases, comma-separated ({', '.join(SGD_CHOICES)}); "
                 "default per device: " + " / ".join(f"{d} {v}" for d, v in DEFAULT_SGD.items())
                 + " (the fastest of those that give the for-loop's parameters bit for bit, vggcore.train.step)",
    "precision": f"stop timing a case once its median's 95%% interval is within +-this (default "
                 f"{_RULE.precision * 100:g}%%)",
    # the time-to-accuracy benchmark (--vgg-modes time_to_accuracy)
    "target": "time to accuracy: the accuracy to reach on validation (confirmed on test), like 97%% or 0.97; "
              "default " + ", ".join(f"{d} {t * 100:g}%%" for d, t in TARGETS.items()),
    "tta-seeds": "time to accuracy: timed runs per case, seeds 0..N-1, after one untimed warm-up run (default 5)",
    "tta-epochs": "time to accuracy: the cap on epochs per run, also the schedule's length (default: the recipe's)",
    "tta-recipe": f"time to accuracy: KEY=VALUE,... over the dataset's recipe, KEY one of {', '.join(RECIPE_KEYS)} "
                  "(default: the recipe in bench/tta.py)",
    "dataset": "time to accuracy: digits, cifar10 or cifar100 (default digits)",
    "data-root": "time to accuracy: the folder of the CIFAR python files (default: none; cifar needs it)",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vggbench", "VGG benchmark grid")
    for name, help_text in OPTIONS.items():
        group.addoption(f"--vgg-{name}", default=None, help=help_text)
    group.addoption("--vgg-channels-last", nargs="?", const="on", default="off", metavar="on|off|off,on",
                    help="NHWC memory format for model and input; 'off,on' benchmarks both (default off)")
    group.addoption("--vgg-compile", nargs="?", const="on", default="off", metavar="on|off|off,on",
                    help="torch.compile the model (compile time is not timed); 'off,on' benchmarks both "
                         "(default off)")
    group.addoption("--vgg-reference", action="store_true",
                    help="also time torchvision's VGG for every case (default off)")
    group.addoption("--vgg-memory-limit", default=None, metavar="SIZE|off", help=LIMIT_HELP)
    group.addoption("--vgg-ab", action="store_true",
                    help="also time vggcore and torchvision alternately, step by step (a drift-free ratio; "
                         "default off)")
    group.addoption("--vgg-ab-against", default=None, metavar="SETTING=VALUE,...",
                    help="with A/B (implies --vgg-ab): time each case against itself with these settings, e.g. "
                         "dtype=bf16,channels_last=on (settings: implementation, dtype, channels_last, compiled, "
                         f"head, optimizer); default {describe(DEFAULT_AGAINST)}, torchvision's VGG")
    group.addoption("--vgg-world-sizes", default=None, metavar="1,2,4",
                    help="run the data-parallel scaling benchmark instead of the single-process grid: DDP train "
                         "step at these world sizes, per-rank batch fixed (--vgg-batch-sizes), arch A unless "
                         "--vgg-archs; sizes the machine cannot host are skipped (default: none, the "
                         "single-process grid runs)")
    profiling.add_options(group)


def _raw_options(config: pytest.Config) -> dict[str, str | None]:
    return {name.replace("-", "_"): config.getoption(f"--vgg-{name}") for name in OPTIONS}


def pytest_configure(config: pytest.Config) -> None:
    stash = config.stash
    try:
        stash[session.CASES] = expand(_raw_options(config),
                                      compiled=switches("--vgg-compile", config.getoption("--vgg-compile")),
                                      channels_last=switches("--vgg-channels-last",
                                                             config.getoption("--vgg-channels-last")),
                                      reference=config.getoption("--vgg-reference"))
        stash[session.AB_AGAINST] = parse_against(config.getoption("--vgg-ab-against"))
        stash[session.RULE] = rule_from_options(config.getoption("--vgg-max-time"),
                                                config.getoption("--vgg-precision"))
        sizes = world_sizes(config.getoption("--vgg-world-sizes"))
        stash[session.SCALING] = expand_scaling(_raw_options(config), sizes) if sizes else []
        stash[session.MEMORY_LIMIT] = parse_limit(config.getoption("--vgg-memory-limit"))
        stash[session.TTA] = tta_cases(config)
        stash[session.PROFILE] = profiling.options_from(config, stash[session.CASES])
        check_settings()   # the peak's and the roof's environment settings, judged before any case runs
    except UserError as err:  # a bad --vgg-* value (OptionError) or setting; anything else keeps its traceback
        raise pytest.UsageError(str(err)) from None


TTA_ONLY = ("target", "tta-seeds", "tta-epochs", "tta-recipe", "dataset", "data-root")


def tta_cases(config: pytest.Config) -> list:
    """The time-to-accuracy cases when --vgg-modes selects them; their own options without it are a mistake."""
    if selected_modes(config.getoption("--vgg-modes"))[1]:
        return expand_tta(_raw_options(config), switches("--vgg-channels-last", config.getoption("--vgg-channels-last")))
    given = [f"--vgg-{name}" for name in TTA_ONLY if config.getoption(f"--vgg-{name}") is not None]
    if given:
        raise UsageError(f"{given[0]} is an option of the time-to-accuracy benchmark; add --vgg-modes {TTA_MODE}")
    return []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        cases = metafunc.config.stash[session.CASES]
        metafunc.parametrize("case", cases, ids=[c.id for c in cases])
    if "scaling_case" in metafunc.fixturenames:
        cases = metafunc.config.stash[session.SCALING]
        metafunc.parametrize("scaling_case", cases, ids=[c.id for c in cases])
    if "tta_case" in metafunc.fixturenames:
        cases = metafunc.config.stash[session.TTA]
        metafunc.parametrize("tta_case", cases, ids=[c.id for c in cases])
    if "ab_case" in metafunc.fixturenames:
        cases = [c for c in metafunc.config.stash[session.CASES] if c.implementation == "vggcore"]
        metafunc.parametrize("ab_case", cases, ids=[c.id.removesuffix("-vggcore") for c in cases])


def pytest_ignore_collect(collection_path, config):
    scaling = config.getoption("--vgg-world-sizes") is not None
    if collection_path.name == "test_ab.py" and not (config.getoption("--vgg-ab")
                                                     or config.getoption("--vgg-ab-against")):
        return True
    if collection_path.name == "test_scaling.py" and not scaling:
        return True
    grid, tta = selected_modes(config.getoption("--vgg-modes"))
    if collection_path.name == "test_vgg.py" and (scaling or not grid):  # the scaling run is a suite of its own
        return True
    if collection_path.name == "test_tta.py" and not tta:
        return True
    return None


@pytest.fixture(scope="session")
def peak_flops():
    """The device's measured peak per dtype (`vggcore.peaks.peak_flops`), once per session, in this run."""
    cache: dict[tuple[str, str], dict[str, float]] = {}

    def get(device: str, dtype: str) -> dict[str, float]:
        if (device, dtype) not in cache:
            cache[(device, dtype)] = measure_peak_flops(device, dtype)
        return cache[(device, dtype)]

    return get


@pytest.fixture(scope="session")
def model_cache():
    """The last model built, reused by the next case that needs the same network (batch sizes, modes)."""
    cache: dict = {}
    yield cache
    cache.clear()


@pytest.fixture
def memory_limit(request):
    """--vgg-memory-limit, parsed (`bench.memory_guard.MemoryLimit`)."""
    return request.config.stash[session.MEMORY_LIMIT]


@pytest.fixture
def rule(request):
    """The sampling rule (`bench.sampling.SamplingRule`) from --vgg-max-time and --vgg-precision."""
    return request.config.stash[session.RULE]


@pytest.fixture
def ab_against(request) -> dict:
    """--vgg-ab-against, parsed: the settings of each A/B pair's B side (torchvision's VGG by default)."""
    return request.config.stash[session.AB_AGAINST]


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """List the cases whose rounds cannot be trusted as one figure, with the reason and what to do (as pyperf),
    the cases --vgg-profile left without a profile, one line per time-to-accuracy case and one per A/B case."""
    profiling.terminal_summary(terminalreporter, config)
    ab = session.ab_lines(config)
    if ab:
        terminalreporter.section("A/B comparisons (interleaved rounds)")
        for line in ab:
            terminalreporter.line(line)
    tta = session.tta_lines(config)
    if tta:
        terminalreporter.section("time to accuracy")
        for line in tta:
            terminalreporter.line(line)
    unstable = session.unstable_cases(config)
    session.report_cases(terminalreporter, "unstable benchmark cases", unstable,
                         f"{len(unstable)} unstable case(s): {UNSTABLE_ADVICE}.")
