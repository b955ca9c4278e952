"""The report folder: a build writes into a hidden folder beside its outputs and replaces the earlier report only
once the new one is whole.

    with staged(out) as folder:      # out/.report-building, made afresh
        ...write report.md, index.html, figures/*.png, tables/*.csv into folder...
    # here `out` holds exactly the new report (and whatever else the user keeps there)

What a build writes is listed in `out/.report-files.json`; the next build removes those files and nothing else, so
a user's own files in the folder stay. A folder built before that list existed is read as holding the outputs a
build writes (report.md, index.html, figures/*.png, tables/*.csv) when it holds a report.md or index.html. A build
that fails leaves the earlier report as it was; the swap itself removes the earlier index.html and report.md first
and puts the new ones last, so a swap cut short leaves no report that looks whole.
"""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .load import ReportInputError

STAGING = ".report-building"
LISTING = ".report-files.json"
PAGES = ("index.html", "report.md")              # what makes a folder look like a whole report
KINDS = (("figures", "*.png"), ("tables", "*.csv"))


def _written(folder: Path) -> list[Path]:
    """The outputs in a finished build's folder, relative to it, the pages last."""
    found = [p.relative_to(folder) for sub, pattern in KINDS for p in sorted((folder / sub).glob(pattern))]
    return found + [Path(p) for p in PAGES if (folder / p).is_file()]


def earlier_outputs(out: Path) -> list[Path]:
    """What an earlier build wrote into `out` (relative paths): its listing, or for a folder built before the
    listing existed, the files a build writes, when the folder holds a report."""
    listing = out / LISTING
    if listing.is_file():
        try:
            names = json.loads(listing.read_text())["files"]
            return [Path(n) for n in names if isinstance(n, str) and ".." not in Path(n).parts]
        except (ValueError, KeyError, TypeError):
            pass   # a listing that cannot be read: fall back on what a build writes
    if not any((out / p).is_file() for p in PAGES):
        return []
    return _written(out)


def publish(staging: Path, out: Path) -> None:
    """Replace the earlier report in `out` by the finished one in `staging`."""
    new = _written(staging)
    old = earlier_outputs(out)
    for rel in sorted(old, key=lambda p: str(p) not in PAGES):   # the pages go first
        (out / rel).unlink(missing_ok=True)
    (out / LISTING).unlink(missing_ok=True)
    for rel in new:                                              # and come back last
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).replace(out / rel)
    (out / LISTING).write_text(json.dumps({"files": [str(p) for p in new]}, indent=1) + "\n")


@contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A fresh hidden folder in `out` to build into; published into `out` when the block ends without error,
    removed in every case."""
    staging = out / STAGING
    try:
        out.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(staging, ignore_errors=True)   # what a killed build left
        staging.mkdir()
    except OSError as err:
        raise ReportInputError(f"cannot write the report to {out}: {err.strerror or err}") from None
    try:
        yield staging
        publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
