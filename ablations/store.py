"""The results folder of a study, and the one reader and writer of its files:

    study.json      `Manifest`: the study the folder holds and the runs it lists (written before any run)
    adaptive.json   `Plan`: how `run --until-decided` adds seeds (alpha, max_seeds, min_effect), when it did
    results.jsonl   one `records.RunRecord` per finished run, appended by the driver alone
    runs/<train_id>/  each training's checkpoint, so an interrupted run resumes (`RunSpec.train_id`)

Every line of results.jsonl is complete, flushed and fsynced before the next run is reported, so a kill at any
moment loses at most the run in flight, and that run resumes from its checkpoint. A write that finds the disk
full is a one-line `StoreError` naming the file, and leaves the file as it was: the run whose record could not be
written runs again (from its finished checkpoint) on the next launch.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from vggcore.files import save_json
from vggcore.errors import UserError
from vggcore.lock import folder_lock

from .records import RunRecord
from .stats.levels import ALPHA as DEFAULT_ALPHA   # a study run with fixed seeds: one look at this level
from .study import RunSpec, Study

RESULTS = "results.jsonl"
MANIFEST = "study.json"
PLAN = "adaptive.json"
DEFAULT_METRIC = "test_top1_error"


class StoreError(UserError, ValueError):
    """The output folder cannot be used for this study."""


@dataclass(frozen=True)
class Manifest:
    """study.json: what the folder is for. Fields that older folders lack take the defaults below."""
    study: str                          # the study's name
    run_ids: tuple[str, ...] = ()       # the runs of the study's own seeds, in the order they were listed
    source: str = ""                    # the study file it came from
    metric: str = DEFAULT_METRIC        # what the study ranks by
    maximize: bool = False              # higher metric is better
    min_effect: float | None = None     # smallest difference that matters, metric units
    statistic: str = "trained"          # the decision statistic ([study] statistic; ablations.stats.robust)

    @classmethod
    def from_json(cls, data: Any, path: Path) -> Manifest:
        if not isinstance(data, dict) or not isinstance(data.get("study"), str) \
                or not isinstance(data.get("run_ids", []), list):
            raise StoreError(f"{path} is corrupt; cannot tell which study this folder holds")
        known = {k: data[k] for k in ("source", "metric", "maximize", "min_effect", "statistic")
                 if data.get(k) is not None}
        return cls(study=data["study"], run_ids=tuple(data.get("run_ids", [])), **known)

    def to_json(self) -> dict:
        return {"study": self.study, "source": self.source, "metric": self.metric, "maximize": self.maximize,
                "min_effect": self.min_effect, "statistic": self.statistic, "run_ids": list(self.run_ids)}


@dataclass(frozen=True)
class Plan:
    """adaptive.json: the plan of `run --until-decided` (`ablations.adaptive`), fixed when the folder started.
    A file written before the look rules were recorded (no "rule" key) was run under the even split with Welch t
    on every finished seed, re-deciding at every look: `from_json` reads it so, and such a folder keeps running and
    analysing under that rule."""
    min_effect: float | None   # metric units; None: a variant can stop only as better or worse
    max_seeds: int             # seeds per variant, the study's own included
    initial_seeds: int         # the study's listed seeds
    alpha: float = DEFAULT_ALPHA   # family-wise error over all looks
    correction: str = "holm"   # across the variants at each look
    rule: str = "obf"          # how alpha is spread over the looks (ablations.stats.sequential.RULES)
    statistic: str = "trained"  # the decision statistic (ablations.stats.robust.LABELS)
    freeze: bool = True        # a decided variant keeps its decision (False: every look re-decides)

    @property
    def looks(self) -> int:
        return self.max_seeds - self.initial_seeds + 1

    def schedule(self):
        """The looks' levels and rule (`ablations.stats.sequential.Schedule`)."""
        from .stats.sequential import Schedule

        return Schedule.of(self.rule, self.initial_seeds, self.max_seeds, self.alpha, self.freeze)

    @property
    def levels(self) -> tuple[float, ...]:
        """Nominal two-sided level of each planned look."""
        return self.schedule().levels

    @property
    def alpha_per_look(self) -> float:
        """The level of the last planned look (under the even split, every look's)."""
        return self.levels[-1]

    def same_choices(self, other: Plan) -> bool:
        """The values a user chose (min_effect, max_seeds, the study's seeds, alpha, correction) agree: a rerun
        with them continues the folder under the rule it recorded."""
        keys = ("min_effect", "max_seeds", "initial_seeds", "alpha", "correction")
        return all(getattr(self, k) == getattr(other, k) for k in keys)

    @classmethod
    def from_json(cls, data: Any, path: Path) -> Plan:
        try:
            legacy = "rule" not in data   # written before the rules were recorded: the even split
            plan = cls(min_effect=data["min_effect"], max_seeds=int(data["max_seeds"]),
                       initial_seeds=int(data["initial_seeds"]), alpha=float(data.get("alpha", DEFAULT_ALPHA)),
                       correction=data.get("correction", "holm"),
                       rule=data.get("rule", "even"), statistic=data.get("statistic", "welch" if legacy else
                                                                         "trained"),
                       freeze=bool(data.get("freeze", not legacy)))
            plan.schedule()   # a rule or count this code cannot plan is a corrupt file too
        except (KeyError, TypeError, ValueError):
            raise StoreError(f"{path} is corrupt; cannot tell how this folder's seeds were added") from None
        return plan

    def to_json(self) -> dict:
        return {**asdict(self), "looks": self.looks, "levels": list(self.levels),
                "alpha_per_look": self.alpha_per_look}


@dataclass(frozen=True)
class Analysis:
    """How a folder's results are analysed: study.json's metric and statistic, and adaptive.json's looks."""
    metric: str                # what the study ranks by
    maximize: bool             # higher metric is better
    source: str                # the study file, else the results file itself
    min_effect: float | None   # adaptive.json's when seeds were added, else study.json's
    looks: int                 # planned looks of --until-decided; 1 for fixed seeds
    alpha: float               # the level of the last look (DEFAULT_ALPHA for fixed seeds)
    statistic: str = "trained"     # the decision statistic
    plan: Plan | None = None       # adaptive.json, None for fixed seeds

@dataclass
class Results:
    records: dict[str, RunRecord] = field(default_factory=dict)   # run_id -> latest record, typed
    corrupt_lines: list[int] = field(default_factory=list)    # 1-based line numbers that were skipped


def well_formed(record: Any) -> bool:
    """A JSON value readers can take for a run record: an object with a string run_id and study, and the fields
    they read, where present, of the right type. Anything else is a corrupt line, however valid its JSON."""
    if not (isinstance(record, dict) and isinstance(record.get("run_id"), str)
            and isinstance(record.get("study"), str)):
        return False
    kinds = {"status": str, "variant": str, "final": dict, "timing": dict, "levels": dict, "provenance": dict,
             "history": list}
    if any(record.get(k) is not None and not isinstance(record[k], t) for k, t in kinds.items()):
        return False
    return all(isinstance(row, dict) for row in record.get("history") or [])


def read_results(path: Path, warn: bool = True) -> Results:
    """Every well-formed record in a results file; a corrupt line is reported and skipped, never removed."""
    out = Results()
    if not path.exists():
        return out
    try:
        with open(path, "rb") as f:
            lines = list(f)
    except OSError as err:
        raise StoreError(f"cannot read {path}: {err.strerror or err}") from None
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            record = None
        if not well_formed(record):
            out.corrupt_lines.append(number)
            continue
        out.records[record["run_id"]] = RunRecord.from_json(record)
    if warn and out.corrupt_lines:
        print(f"warning: {path}: skipped {len(out.corrupt_lines)} corrupt line(s) "
              f"({', '.join(map(str, out.corrupt_lines[:5]))}); the file is left as it is", file=sys.stderr)
    return out


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """A full disk while writing `path` becomes one StoreError that names it; other errors pass unchanged."""
    try:
        yield
    except UserError:
        raise
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise StoreError(f"no space left on device writing {path}; free some space (or choose an --out on "
                         "another filesystem) and run the same command again to resume: the runs recorded so far "
                         "are kept") from None


class Store:
    def __init__(self, out: str | Path, results: str | Path | None = None) -> None:
        """The folder `out`; `results`: its results file when it is not `out/results.jsonl`."""
        self.root = Path(out)
        self.results_path = Path(results) if results is not None else self.root / RESULTS
        self.manifest_path = self.root / MANIFEST
        self.plan_path = self.root / PLAN

    @classmethod
    def of_results(cls, path: str | Path) -> Store:
        """The folder of a results file, whatever the file is called."""
        return cls(Path(path).parent, path)

    # ------------------------------------------------------------------------------------------ the folder
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

    @contextmanager
    def lock(self) -> Iterator[Path]:
        """Hold the folder for one driver; a second driver gets FolderLocked at once. A folder this call created
        is removed again when the block leaves nothing in it (a study refused before its first run)."""
        with folder_lock(self.root, what="study folder") as root:
            self.prepare()
            yield root

    def run_dir(self, run: RunSpec) -> Path:
        # By training: runs that differ in their eval section alone share one folder (train_id is run_id for a
        # run without one, so older folders resume where they are).
        return self.root / "runs" / run.train_id

    # --------------------------------------------------------------------------------------- study.json
    def manifest(self) -> Manifest | None:
        """The folder's study.json, None when it has none; StoreError when it cannot be read."""
        data = self._read_json(self.manifest_path, "cannot tell which study this folder holds")
        return None if data is None else Manifest.from_json(data, self.manifest_path)

    def check_manifest(self, study: Study, runs: list[RunSpec]) -> None:
        """Refuse a folder made by a study whose runs would now come out differently; record it otherwise.
        Adding runs (more seeds, more levels) is allowed: nothing recorded changes."""
        ids = [r.run_id for r in runs]
        old = self.manifest()
        if old is not None:
            if old.study != study.name:
                raise StoreError(f"{self.root} holds study {old.study!r}, not {study.name!r}; use another --out")
            missing = [rid for rid in old.run_ids if rid not in set(ids)]
            if missing:
                raise StoreError(
                    f"{study.source or study.name} changed since {self.root} was started: {len(missing)} of its "
                    f"{len(old.run_ids)} runs would now be configured differently. Restore the file, "
                    "or use a new --out so results are not mixed")
            ids = [*old.run_ids, *[i for i in ids if i not in set(old.run_ids)]]
        manifest = Manifest(study=study.name, run_ids=tuple(ids), source=study.source, metric=study.metric,
                            maximize=study.maximize, min_effect=study.min_effect, statistic=study.statistic)
        with _writing(self.manifest_path):
            save_json(self.manifest_path, manifest.to_json())

    # ------------------------------------------------------------------------------------ adaptive.json
    def plan(self) -> Plan | None:
        """The plan of `run --until-decided`, None for a folder run with fixed seeds."""
        data = self._read_json(self.plan_path, "cannot tell how this folder's seeds were added")
        return None if data is None else Plan.from_json(data, self.plan_path)

    def keep_plan(self, plan: Plan) -> Plan:
        """Record the plan and return it, or return the plan the folder was started with when the values a user
        chose agree (its rule, statistic and levels stay those it recorded), or refuse one that differs."""
        old = self.plan()
        if old is None:
            with _writing(self.plan_path):
                save_json(self.plan_path, plan.to_json())
            return plan
        if not old.same_choices(plan):
            raise StoreError(f"{self.root} was started --until-decided with max_seeds {old.max_seeds}, "
                             f"min_effect {old.min_effect}, alpha {old.alpha}; changing the plan midway would "
                             "void its error rate. Rerun with the same values or use a new --out")
        return old

    def analysis(self) -> Analysis:
        """How to analyse the folder's results (defaults for a bare results file without study.json)."""
        manifest, plan = self.manifest(), self.plan()
        manifest = manifest or Manifest(study="", source=str(self.results_path))
        return Analysis(metric=manifest.metric, maximize=bool(manifest.maximize),
                        source=manifest.source or str(self.results_path),
                        min_effect=plan.min_effect if plan is not None else manifest.min_effect,
                        looks=plan.looks if plan is not None else 1,
                        alpha=plan.alpha_per_look if plan is not None else DEFAULT_ALPHA,
                        statistic=plan.statistic if plan is not None else manifest.statistic, plan=plan)

    # ------------------------------------------------------------------------------------ results.jsonl
    def read(self, warn: bool = True) -> Results:
        return read_results(self.results_path, warn)

    def append(self, record: RunRecord) -> None:
        """Append one record as one line, durably; on a full disk the file is cut back to what it was."""
        line = json.dumps(record.to_json(), default=str, separators=(",", ":")) + "\n"
        size = self.results_path.stat().st_size if self.results_path.is_file() else 0
        if size:
            with open(self.results_path, "rb") as f:  # a line cut off by a crash must not swallow this one
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = "\n" + line
        with _writing(self.results_path):
            try:
                with open(self.results_path, "a", encoding="utf-8") as f:
                    f.write(line)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError:
                if self.results_path.is_file():
                    os.truncate(self.results_path, size)  # no half line; truncating needs no space
                raise

    # -------------------------------------------------------------------------------------------- reading
    @staticmethod
    def _read_json(path: Path, consequence: str) -> Any:
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise StoreError(f"{path} is corrupt; {consequence}") from None
        except OSError as err:
            raise StoreError(f"cannot read {path}: {err.strerror or err}") from None
