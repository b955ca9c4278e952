import os
import shutil
from pathlib import Path

import pytest
import torch
import torch._dynamo  # noqa: F401  (see below)

from vggcore.model.summary import summary
from vggcore.peaks import PEAK_CALL_ENV
from vggcore.threads import torch_threads

# torch imports torch._dynamo and friends lazily (an optimizer's first step, an initialisation on the meta device).
# Import them once up front: pytester restores sys.modules after each in-process run, and a torch module imported
# again re-registers its operator library and fails.
summary("A", image_size=32, width=0.125)

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture
def suite(pytester, monkeypatch):
    """A folder with a copy of bench/ for `pytest bench` sessions in a subprocess (pytester.runpytest_subprocess).
    Their machine peak is measured by small kernels (VGGBENCH_PEAK_CALL_S=0.05, vggcore.peaks): about 1 s a session
    instead of 7 on one thread of an AVX2 CPU; these tests check the harness, and the peak has tests of its own."""
    shutil.copytree(BENCH, pytester.path / "bench", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv(PEAK_CALL_ENV, "0.05")
    return pytester


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


class TickClock:
    """A stub clock: each read moves time on by `tick` seconds."""

    def __init__(self, tick):
        self.now, self.tick = 0.0, tick

    def __call__(self):
        self.now += self.tick
        return self.now


@pytest.fixture
def tick_clock():
    """tick_clock(0.5) is a clock whose every read is half a second after the last."""
    return TickClock


@pytest.fixture
def one_thread():
    """Torch on one thread for the test: one summation order, and no contention for tiny ops on a shared machine."""
    with torch_threads(1):
        yield


def pytest_configure(config):
    # at most 2 torch threads per test process; under pytest-xdist (`./dev test` runs -n 2) each worker gets its
    # share of the cores, so the workers do not contend for them
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // workers)))
    # the pytest sessions the tests start (pytester subprocesses, the demo's `pytest bench`) are plain sessions,
    # not xdist workers: pytest-benchmark disables itself where it sees PYTEST_XDIST_WORKER (xdist only sets these)
    for name in [n for n in os.environ if n.startswith("PYTEST_XDIST_")]:
        del os.environ[name]


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist the Ray tests share one worker (--dist loadgroup): one Ray on the machine at a time."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        if item.get_closest_marker("ray"):
            item.add_marker(pytest.mark.xdist_group("ray"))

pytest_plugins = ["pytester", "xdist_groups"]   # xdist_groups: --dist loadgroup honoured on pytest 9.2
