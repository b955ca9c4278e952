"""The driver: expand a study, skip what is recorded, run the rest on an executor, append each record.

Executors: "local" runs in this process (--workers 1) or in worker processes (`workers.py`), each pinned to its
share of the cores; "ray" submits each run as a Ray task (`ray_executor.py`: lost tasks retried, the folder
probed from every node). Either way the driver alone writes results.jsonl, and holds the folder's lock
(`vggcore.lock`) for the whole study, so a second driver on the folder is refused. With `track` targets the
driver also writes each record, once it is in results.jsonl, to MLflow or TensorBoard (`export.LiveTracking`).

Runs that share a training (they differ in their eval section alone: `RunSpec.train_id`) share a run folder, so
no two of them may run at once: the first of each training runs first, the others (which then only score the
finished checkpoint) after all of those; a training that failed is not tried again by the runs that share it.
"""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack, closing
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

from vggcore.threads import cpu_count

from .execute import execute_run
from .integrations.export import LiveTracking, info_of
from .integrations.ray_executor import RETRIES, RayRuns
from .records import RunRecord
from .store import Store, StoreError
from .study import RunSpec, Study, expand
from .integrations.tracking import parse_target
from .workers import run_in_workers

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class RunOptions:
    executor: str = "local"
    workers: int = 1
    ray_address: str | None = None
    num_cpus: float | None = None       # per run on Ray; default: the study's
    num_gpus: float | None = None
    retry_failed: bool = False
    progress: bool = True
    track: tuple[str, ...] = ()         # live tracking targets, mlflow:URI or tensorboard:LOGDIR (ablations.integrations.tracking)
    ray_retries: int = RETRIES          # submissions of a Ray task lost to the system after its first


def pending(study: Study, store: Store, retry_failed: bool = False,
            extra: Sequence[RunSpec] = ()) -> tuple[list[RunSpec], list[RunSpec], dict]:
    """(all runs, runs still to do, records already there). `extra`: runs beyond the study's seeds."""
    runs = expand(study)
    known = {r.run_id for r in runs}
    runs += [r for r in extra if r.run_id not in known]
    records = store.read().records
    todo = [r for r in runs if r.run_id not in records
            or (retry_failed and records[r.run_id].status == "failed")]
    return runs, todo, records


def _local(todo: list[RunSpec], store: Store, workers: int) -> Iterator[RunRecord]:
    threads = max(1, cpu_count() // workers)
    if workers == 1:
        for run in todo:
            yield execute_run(run.to_json(), str(store.run_dir(run)), threads)
        return
    yield from run_in_workers(todo, store.run_dir, workers, threads)


def by_training(todo: list[RunSpec]) -> tuple[list[RunSpec], list[RunSpec]]:
    """(the first run of each training, in order; the others that share one)."""
    first, rest, seen = [], [], set()
    for run in todo:
        (rest if run.train_id in seen else first).append(run)
        seen.add(run.train_id)
    return first, rest


def phased(todo: list[RunSpec], start: Callable[[list[RunSpec]], Iterable[RunRecord]],
           started: Iterable[RunRecord] | None = None) -> Iterator[RunRecord]:
    """`start(runs)` streams records; the runs sharing a training run after the first of each has finished.
    `started`: the first phase's stream, made already (`start(by_training(todo)[0])`)."""
    first, rest = by_training(todo)
    failed: dict[str, RunRecord] = {}
    for phase in (first, rest):
        ready = []
        for run in phase:
            if run.train_id in failed:
                yield RunRecord.training_failed(run, failed[run.train_id])
            else:
                ready.append(run)
        if not ready:
            continue
        stream = started if phase is first and started is not None else start(ready)
        try:
            for record in stream:
                if record.status == "failed" and phase is first:
                    failed[record.train_id or record.run_id] = record
                yield record
        finally:
            stream.close()


def run_study(study: Study, store: Store, options: RunOptions,
              report: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
              extra: Sequence[RunSpec] = ()) -> dict:
    """Run every pending run of `study` into `store`. Returns counts; KeyboardInterrupt propagates after the
    records finished so far are safely on disk. `extra` runs (seeds added by --until-decided) run like any
    other but stay out of study.json, so a later plain `run` of the study does not see them as missing."""
    with store.lock():
        return _run_locked(study, store, options, report, extra)


def _run_locked(study: Study, store: Store, options: RunOptions, report: Callable[[str], None],
                extra: Sequence[RunSpec]) -> dict:
    runs, todo, records = pending(study, store, options.retry_failed, extra)
    counts = {"total": len(runs), "skipped": len(runs) - len(todo), "ran": 0}
    writer = [report]  # where lines go: `report`, then the progress bar's write while it is up
    say = lambda line: writer[0](line)  # noqa: E731
    with ExitStack() as stack:
        # Tracking targets, then the executor (Ray: the cluster joined, every node shown to see the folder), are
        # proven usable before study.json or any record is written: a bad target or address writes nothing.
        info = info_of(store, study.name, study.metric, (), {f.name: list(f.levels) for f in study.factors})
        tracking = stack.enter_context(closing(LiveTracking([parse_target(t) for t in options.track], store,
                                                            info, say)))
        if options.executor not in EXECUTORS:
            raise ValueError(f"unknown executor {options.executor!r}; choose one of {', '.join(EXECUTORS)}")
        stream = None
        if todo:
            def start(batch: list[RunSpec]) -> Iterable[RunRecord]:
                return RayRuns(batch, store, study, options, say) if options.executor == "ray" \
                    else _local(batch, store, max(1, options.workers))

            # The first run of each training first, the runs sharing it after (phased); the first phase's executor
            # is made now, so that it too is proven usable before anything is written.
            first = start(by_training(todo)[0])
            stack.callback(first.close)
            stream = phased(todo, start, first)
            stack.callback(stream.close)  # stops workers now when Ctrl-C arrived outside the executor's own code
        store.check_manifest(study, [r for r in runs if r.seed in study.seeds])
        tracking.catch_up()  # records a killed driver left untracked
        if stream is None:
            return counts
        bar = None
        if options.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(runs), initial=counts["skipped"], desc=f"study {study.name}", unit="run")
            stack.callback(bar.close)
            writer[0] = bar.write
        start = time.perf_counter()
        for record in stream:
            if record.no_space:  # every next run would meet the same full disk: stop, and say so once
                raise StoreError(f"the study stopped at {record.variant} seed {record.seed}, which found no space "
                                 f"left on the disk ({record.error}); it is not recorded as failed: free some "
                                 "space and run the same command again to resume")
            record = record.with_executor(options.executor)
            store.append(record)
            tracking.log(record)  # after the record is safe: a store never holds an unrecorded run
            counts["ran"] += 1
            if bar is not None:
                bar.update(1)
            say(_line(record, study.metric, counts["skipped"] + counts["ran"], len(runs)))
        counts["seconds"] = time.perf_counter() - start
    return counts


def _line(record: RunRecord, metric: str, done: int, total: int) -> str:
    head = f"[{done}/{total}] {record.variant} seed {record.seed}: {record.status}"
    seconds = record.timing.get("seconds", 0)
    if record.status == "ok":
        return f"{head} {metric}={record.final[metric]:.4f} ({seconds:.1f} s)"
    if record.status == "diverged":
        return f"{head} in epoch {record.diverged_epoch} ({seconds:.1f} s)"
    return f"{head}: {record.error}"
