"""A study folder's records into tracking stores: afterwards (`export`) or live as the study runs (`LiveTracking`).

    python -m ablations export runs/demo --mlflow sqlite:///mlflow.db
    python -m ablations export runs/demo --tensorboard tb/
    python -m ablations run STUDY.toml --out runs/demo --track mlflow:sqlite:///mlflow.db --track tensorboard:tb

The records are read through `Store` alone; what a record becomes and how runs are matched is `tracking`'s.
Every record of the study is exported, failed and diverged runs with their status: none is dropped.

Live tracking is written by the driver alone, after each record is safely in results.jsonl, so the tracking
store never holds a run the folder does not. A driver killed between the two leaves that one run untracked: the
next `run` with the same targets (or `export`) adds it first. A tracking store that fails midway does not stop
the study: the driver warns once, stops writing to it, and says which `export` command catches up afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from vggcore.results import STATUSES

from ..records import RunRecord
from ..store import MANIFEST, Store, StoreError
from .tracking import Backend, StudyInfo, Target, TrackedRun, TrackingError, first_line, sync


def studies_below(root: Path, depth: int = 2) -> list[Path]:
    """The study folders (those with a study.json) inside `root`, at most `depth` levels down: the demo keeps its
    study in runs/demo/ablations, which is the folder `export` wants."""
    found, level = [], [root]
    for _ in range(depth):
        level = sorted(p for folder in level for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        found += [p for p in level if (p / MANIFEST).is_file()]
    return found


def no_study(root: Path, command: str) -> StoreError:
    """The one-line error for a folder without a study.json; it names the study folders inside it, with the
    command that reads them (`command` with the folder in place of {folder})."""
    inside = studies_below(root) if root.is_dir() else []
    if len(inside) == 1:
        return StoreError(f"{root} is not a study folder (it has no {MANIFEST}); the study is in {inside[0]}: "
                          f"{command.format(folder=inside[0])}")
    if inside:
        return StoreError(f"{root} is not a study folder (it has no {MANIFEST}); it holds {len(inside)} studies: "
                          f"{', '.join(map(str, inside))}; give one of them")
    return StoreError(f"{root} is not a study folder (it has no {MANIFEST}); give the --out folder of "
                      "`python -m ablations run`")


def study_records(store: Store, command: str = "give that folder") -> tuple[StudyInfo, list[RunRecord]]:
    """The study of a folder and its records (the latest of each run, in the order they were listed), or a
    StoreError naming the folder when it holds no study (and the study folders inside it, with `command`)."""
    root = store.root
    if not root.is_dir():
        raise StoreError(f"{root} is not a study folder ({'a file' if root.exists() else 'no such folder'}); "
                         "give the --out folder of `python -m ablations run`")
    manifest = store.manifest()
    if manifest is None:
        raise no_study(root, command)
    records = {rid: r for rid, r in store.read().records.items() if r.study == manifest.study}
    order = [*[rid for rid in manifest.run_ids if rid in records], *[rid for rid in records
                                                                    if rid not in set(manifest.run_ids)]]
    return info_of(store, manifest.study, manifest.metric, [records[rid] for rid in order]), \
        [records[rid] for rid in order]


def info_of(store: Store, name: str, metric: str, records: Sequence[RunRecord],
            factors: dict[str, Sequence[str]] | None = None) -> StudyInfo:
    """The study as the stores see it; the factors' levels are those of `records` unless given."""
    if factors is None:
        found: dict[str, list[str]] = {}
        for record in records:
            for factor, level in (record.levels or {}).items():
                if str(level) not in found.setdefault(str(factor), []):
                    found[str(factor)].append(str(level))
        factors = found
    return StudyInfo(name=name, metric=metric, folder=str(Path(store.root).resolve()),
                     factors={k: tuple(v) for k, v in factors.items()}, statuses=STATUSES)


def open_backend(target: Target, info: StudyInfo) -> Backend:
    """Connect to the store and prove it can be written (TrackingError otherwise), before any run is written."""
    if target.kind == "mlflow":
        from .tracking_mlflow import MLflowBackend

        return MLflowBackend(target, info)
    from .tracking_tensorboard import TensorBoardBackend

    return TensorBoardBackend(target, info)


def open_all(targets: Sequence[Target], info: StudyInfo) -> list[Backend]:
    """Every target opened and proven writable before any is written to: one bad target writes nothing.
    TensorBoard's checks write nothing, so they come first; MLflow's creates the study's experiment."""
    opened: list[Backend] = []
    try:
        for target in sorted(targets, key=lambda t: t.kind != "tensorboard"):
            opened.append(open_backend(target, info))
    except BaseException:
        for backend in opened:
            backend.close()
        raise
    return opened


def export(store: Store, targets: Sequence[Target], report: Callable[[str], None] = print,
           progress: bool = False) -> dict[str, str]:
    """Write the folder's runs the stores lack; target -> what happened there ("3 new, 0 updated, 5 already
    there"). TrackingError (one line) if a target cannot be used or fails midway. `progress`: a bar per target on
    stderr over the study's runs (those already there counted when the store has been read)."""
    if not targets:
        raise TrackingError("export needs a store: give --mlflow URI, --tensorboard LOGDIR, or both")
    options = " ".join(t.export_option() for t in targets)
    info, records = study_records(store, f"python -m ablations export {{folder}} {options}")
    runs = [TrackedRun.of(r, info.folder) for r in records]
    backends = open_all(targets, info)
    out = {}
    try:
        for backend in backends:
            counts = _synced(backend, runs, progress)
            out[str(backend.target)] = str(counts)
            report(f"{backend.target}: {len(runs)} run(s) of study {info.name}: {counts}")
    finally:
        for backend in backends:
            backend.close()
    return out


def _synced(backend: Backend, runs: list[TrackedRun], progress: bool):
    """`sync` with, when `progress`, a bar over the runs: one step per run written, the runs already there added
    at the end, and the counts beside it."""
    if not progress:
        return sync(backend, runs)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(runs), desc=f"export {backend.target.kind}", unit="run", leave=False)
    try:
        counts = sync(backend, runs, progress=lambda run: bar.update(1))
        bar.update(counts.kept)
        bar.set_postfix(new=counts.new, updated=counts.updated, kept=counts.kept)
        return counts
    finally:
        bar.close()


class LiveTracking:
    """The driver's tracking during `run`: opened (and proven writable) before anything runs, then one run
    written per record as the driver appends it. A store that fails later is warned about once and dropped."""

    def __init__(self, targets: Sequence[Target], store: Store, info: StudyInfo,
                 report: Callable[[str], None]) -> None:
        self.store, self.info, self.report = store, info, report
        self.backends = open_all(targets, info)

    def catch_up(self) -> None:
        """Runs recorded but not tracked (a driver killed between the two, an earlier run without tracking)."""
        if not self.backends:
            return
        _, records = study_records(self.store)
        runs = [TrackedRun.of(r, self.info.folder) for r in records]
        for backend in list(self.backends):
            try:
                counts = sync(backend, runs)
            except TrackingError as err:
                self._drop(backend, err)
                continue
            if counts.new or counts.updated:
                self.report(f"tracking {backend.target}: caught up with the records already in "
                            f"{self.store.results_path} ({counts})")

    def log(self, record: RunRecord) -> None:
        run = TrackedRun.of(record, self.info.folder)
        for backend in list(self.backends):
            try:
                sync(backend, [run])
            except TrackingError as err:
                self._drop(backend, err)

    def _drop(self, backend: Backend, err: TrackingError) -> None:
        self.backends.remove(backend)
        backend.close()
        self.report(f"warning: tracking to {backend.target} failed ({first_line(err)}); the study goes on without "
                    f"it and every run is kept in {self.store.results_path}: afterwards, run `python -m ablations "
                    f"export {self.store.root} {backend.target.export_option()}` to add what it lacks")

    def close(self) -> None:
        for backend in self.backends:
            backend.close()
        self.backends = []
