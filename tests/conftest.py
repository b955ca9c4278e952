import pytest
import torch

from vggcore import summary

# Building on the meta device lazily imports torch._dynamo and friends. Do it once up front: pytester restores
# sys.modules after each test, and a torch module imported again re-registers its operator library and fails.
summary("A", image_size=32, width=0.125)


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
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_configure(config):
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

pytest_plugins = ["pytester"]
