"""The driver: expand a study, skip what is recorded, run the rest on an executor, append each record.

Executors: "local" runs in this process (--workers 1) or in worker processes (`workers.py`), each pinned to its
share of the cores; "ray" submits each run as a Ray task. Either way the driver alone writes results.jsonl, and
holds the folder's lock (`vggcore.lock`) for the whole study, so a second driver on the folder is refused.

Runs that share a training (they differ in their eval section alone: `RunSpec.train_id`) share a run folder, so
no two of them may run at once: the first of each training runs first, the others (which then only score the
finished checkpoint) after all of those; a training that failed is not tried again by the runs that share it.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from vggcore.errors import MissingPackage
from vggcore.measure import cpu_count

from .execute import execute_run
from .records import RunRecord
from .store import Store, StoreError
from .study import RunSpec, Study, expand
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


def pending(study: Study, store: Store, retry_failed: bool = False,
            extra: Sequence[RunSpec] = ()) -> tuple[list[RunSpec], list[RunSpec], dict]:
    """(all runs, runs still to do, records already there). `extra`: runs beyond the study's seeds."""
    runs = expand(study)
    known = {r.run_id for r in runs}
    runs += [r for r in extra if r.run_id not in known]
    records = store.read().records
    todo = [r for r in runs if r.run_id not in records
            or (retry_failed and records[r.run_id].get("status") == "failed")]
    return runs, todo, records


def _local(todo: list[RunSpec], store: Store, workers: int) -> Iterator[RunRecord]:
    threads = max(1, cpu_count() // workers)
    if workers == 1:
        for run in todo:
            yield execute_run(run.to_json(), str(store.run_dir(run)), threads)
        return
    yield from run_in_workers(todo, store.run_dir, workers, threads)


def _ray(todo: list[RunSpec], store: Store, study: Study, options: RunOptions) -> Iterator[RunRecord]:
    try:
        import ray
    except ImportError:
        raise MissingPackage("the Ray executor needs Ray: pip install 'vggbench[ray]'") from None
    address = options.ray_address or os.environ.get("RAY_ADDRESS")
    started_here = not ray.is_initialized()
    if started_here:
        kwargs = {"address": address} if address else {"num_cpus": cpu_count(), "include_dashboard": False}
        ray.init(logging_level="ERROR", log_to_driver=False, **kwargs)
    num_cpus = options.num_cpus if options.num_cpus is not None else study.num_cpus
    num_gpus = options.num_gpus if options.num_gpus is not None else study.num_gpus
    remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0)(execute_run)
    try:
        # The run folder must be reachable from the workers (a shared filesystem on a real cluster). A run of
        # train.nproc = N reserves N times the resources and starts its N ranks on the worker's node.
        refs = {}
        for r in todo:
            n = int(r.config["train"].get("nproc", 1))
            task = remote.options(num_cpus=num_cpus * n, num_gpus=num_gpus * n) if n > 1 else remote
            refs[task.remote(r.to_json(), str(store.run_dir(r).resolve()), max(1, int(num_cpus * n)))] = r
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                refs.pop(ref)
                yield ray.get(ref)
    finally:
        for ref in list(refs):
            ray.cancel(ref, force=True)
        if started_here:
            ray.shutdown()


def by_training(todo: list[RunSpec]) -> tuple[list[RunSpec], list[RunSpec]]:
    """(the first run of each training, in order; the others that share one)."""
    first, rest, seen = [], [], set()
    for run in todo:
        (rest if run.train_id in seen else first).append(run)
        seen.add(run.train_id)
    return first, rest


def phased(todo: list[RunSpec], start: Callable[[list[RunSpec]], Iterator[RunRecord]]) -> Iterator[RunRecord]:
    """`start(runs)` streams records; the runs sharing a training run after the first of each has finished."""
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
        stream = start(ready)
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
    store.check_manifest(study, [r for r in runs if r.seed in study.seeds])
    counts = {"total": len(runs), "skipped": len(runs) - len(todo), "ran": 0}
    if not todo:
        return counts
    if options.executor == "ray":
        stream = phased(todo, lambda runs: _ray(runs, store, study, options))
    elif options.executor == "local":
        stream = phased(todo, lambda runs: _local(runs, store, max(1, options.workers)))
    else:
        raise ValueError(f"unknown executor {options.executor!r}; choose one of {', '.join(EXECUTORS)}")
    bar = None
    if options.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(runs), initial=counts["skipped"], desc=f"study {study.name}", unit="run")
    write = bar.write if bar is not None else report
    start = time.perf_counter()
    try:
        for record in stream:
            if record.no_space:  # every next run would meet the same full disk: stop, and say so once
                raise StoreError(f"the study stopped at {record.variant} seed {record.seed}, which found no space "
                                 f"left on the disk ({record.error}); it is not recorded as failed: free some "
                                 "space and run the same command again to resume")
            record = record.with_executor(options.executor)
            store.append(record)
            counts["ran"] += 1
            if bar is not None:
                bar.update(1)
            write(_line(record, study.metric, counts["skipped"] + counts["ran"], len(runs)))
    finally:
        stream.close()  # stops workers now when Ctrl-C arrived outside the executor's own code
        if bar is not None:
            bar.close()
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
