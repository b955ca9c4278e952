"""A progress bar for a benchmark case that runs for a minute or more (time to accuracy), on the terminal through
pytest's output capture.

    bar = CaseBar(request.config, case.id, total=epochs, unit="epoch")   # None-safe: off under pytest -q
    bar.step(run="seed 0", val_acc="91.2%")
    bar.close()

pytest captures what a test writes, so a bar written the ordinary way would only appear in a failure's report.
The bar writes through pytest's capture manager instead, suspended for each write (tqdm writes at most every
0.1 s), to stderr like every bar of the project. `pytest -q` turns it off, like --quiet of the other commands.
"""

from __future__ import annotations

import sys

import pytest


class _Terminal:
    """A file for tqdm: each write goes to the real stderr, pytest's capture suspended around it."""

    def __init__(self, config: pytest.Config) -> None:
        self.capture = config.pluginmanager.getplugin("capturemanager")

    def write(self, text: str) -> None:
        if self.capture is None:
            sys.stderr.write(text)
            return
        with self.capture.global_and_fixture_disabled():
            sys.stderr.write(text)
            sys.stderr.flush()

    def flush(self) -> None:
        pass


class CaseBar:
    """A tqdm bar of `total` steps named `name`; every method does nothing when the bar is off."""

    def __init__(self, config: pytest.Config, name: str, total: int, unit: str) -> None:
        self.bar = None
        if config.get_verbosity() < 0:   # pytest -q: no bar
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=name, unit=unit, leave=False, file=_Terminal(config))

    def step(self, n: int = 1, **figures: str) -> None:
        if self.bar is None:
            return
        if figures:
            self.bar.set_postfix(figures, refresh=False)
        self.bar.update(n)

    def show(self, **figures: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix(figures)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.refresh()   # the last state shown, whatever tqdm's rate limit skipped
            self.bar.close()
