"""The results folder: `results.jsonl` (one record per finished run), `study.json` (what the folder is for),
and `runs/<run_id>/` (each run's checkpoint, so an interrupted run resumes).

Only the driver writes `results.jsonl`: one complete line per record, flushed and fsynced before the next run
is reported, so a kill at any moment loses at most the run in flight, and that run resumes from its checkpoint.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from vggcore.checkpoint import save_json
from vggcore.errors import UserError
from vggcore.lock import folder_lock

from .study import RunSpec, Study

RESULTS = "results.jsonl"
MANIFEST = "study.json"


class StoreError(UserError, ValueError):
    """The output folder cannot be used for this study."""


@dataclass
class Results:
    records: dict[str, dict] = field(default_factory=dict)   # run_id -> latest record
    corrupt_lines: list[int] = field(default_factory=list)    # 1-based line numbers that were skipped


def read_results(path: Path, warn: bool = True) -> Results:
    """Every well-formed record in a results file; a corrupt line is reported and skipped, never removed."""
    out = Results()
    if not path.exists():
        return out
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
                rid = record["run_id"]
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
                out.corrupt_lines.append(number)
                continue
            out.records[rid] = record
    if warn and out.corrupt_lines:
        print(f"warning: {path}: skipped {len(out.corrupt_lines)} corrupt line(s) "
              f"({', '.join(map(str, out.corrupt_lines[:5]))}); the file is left as it is", file=sys.stderr)
    return out


class Store:
    def __init__(self, out: str | Path) -> None:
        self.root = Path(out)
        self.results_path = self.root / RESULTS
        self.manifest_path = self.root / MANIFEST

    def prepare(self) -> None:
        """Create the folder and prove it is writable before any training starts."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            # A probe name of our own: a fixed name would let two processes delete each other's probe.
            fd, probe = tempfile.mkstemp(dir=self.root, prefix=".write-test-")
            os.close(fd)
            os.unlink(probe)
        except OSError as err:
            raise StoreError(f"cannot write to output folder {self.root}: {err.strerror or err}") from None

    def lock(self):
        """Hold the folder for one driver (a context manager); a second driver gets FolderLocked at once."""
        self.prepare()
        return folder_lock(self.root, what="study folder")

    def run_dir(self, run: RunSpec) -> Path:
        return self.root / "runs" / run.run_id

    def check_manifest(self, study: Study, runs: list[RunSpec]) -> None:
        """Refuse a folder made by a study whose runs would now come out differently; record it otherwise.
        Adding runs (more seeds, more levels) is allowed: nothing recorded changes."""
        ids = [r.run_id for r in runs]
        if self.manifest_path.exists():
            try:
                old = json.loads(self.manifest_path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                old = None
            if not isinstance(old, dict):  # valid JSON of another shape ("[]") is just as unreadable
                raise StoreError(f"{self.manifest_path} is corrupt; cannot tell which study this folder holds")
            if old.get("study") != study.name:
                raise StoreError(f"{self.root} holds study {old.get('study')!r}, not {study.name!r}; use another --out")
            missing = [rid for rid in old.get("run_ids", []) if rid not in set(ids)]
            if missing:
                raise StoreError(
                    f"{study.source or study.name} changed since {self.root} was started: {len(missing)} of its "
                    f"{len(old.get('run_ids', []))} runs would now be configured differently. Restore the file, "
                    "or use a new --out so results are not mixed")
            ids = [*old.get("run_ids", []), *[i for i in ids if i not in set(old.get("run_ids", []))]]
        save_json(self.manifest_path, {"study": study.name, "source": study.source, "metric": study.metric,
                                       "maximize": study.maximize, "min_effect": study.min_effect,
                                       "run_ids": ids})

    def read(self, warn: bool = True) -> Results:
        return read_results(self.results_path, warn)

    def append(self, record: dict) -> None:
        line = json.dumps(record, default=str, separators=(",", ":")) + "\n"
        if self.results_path.exists() and self.results_path.stat().st_size:
            with open(self.results_path, "rb") as f:  # a line cut off by a crash must not swallow this one
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = "\n" + line
        with open(self.results_path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
