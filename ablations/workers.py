"""Local worker processes for `--workers N`: one long-lived process per slot, each behind its own pipe.

Not a ProcessPoolExecutor: when one of its workers dies (OOM killer, segfault, SIGKILL) the whole pool breaks,
every run in flight is lost and no one can tell which run killed it. Here a dead worker's run alone is recorded
`failed` with the signal or exit code, a fresh process takes its slot, and the other workers never notice.

Workers ignore SIGINT: Ctrl-C at a terminal reaches the whole process group, and the driver alone decides what
it means (it stops the workers itself; their last checkpoints are whole, written atomically). No threads are
involved, so an interrupted interpreter has nothing to join at exit. On Linux a worker also dies with its
driver, so a SIGKILLed driver leaves no orphan training a run that the next driver will start again.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from multiprocessing.connection import wait
from typing import Iterator

from .records import RunRecord
from .study import RunSpec


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the driver died before prctl took effect
        os._exit(1)


def _serve(conn, threads: int, parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent_pid)
    from .execute import execute_run

    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        spec, run_dir = job
        conn.send(execute_run(spec, run_dir, threads))


class _Slot:
    def __init__(self, ctx, threads: int) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, threads, os.getpid()), name="ablations-worker")
        self.process.start()
        child.close()
        self.run: RunSpec | None = None
        self.started = 0.0

    def stop(self, kill: bool) -> None:
        if kill and self.process.is_alive():
            self.process.kill()
        elif not kill:
            try:
                self.conn.send(None)
            except OSError:
                pass
        self.process.join(timeout=None if kill else 30)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def run_in_workers(todo: list[RunSpec], run_dir, workers: int, threads: int) -> Iterator[RunRecord]:
    """Yield one record per run of `todo`, `workers` at a time; `run_dir(run)` is the run's folder."""
    ctx = multiprocessing.get_context("spawn")
    slots: list[_Slot | None] = [None] * workers
    queue = list(todo)
    finished = False
    try:
        while True:
            for i, slot in enumerate(slots):
                if queue and (slot is None or slot.run is None):
                    if slot is not None and not slot.process.is_alive():
                        slot.stop(kill=True)
                        slot = None
                    if slot is None:
                        slot = slots[i] = _Slot(ctx, threads)
                    slot.run, slot.started = queue.pop(0), time.time()
                    slot.conn.send((slot.run.to_json(), str(run_dir(slot.run))))
            busy = [s for s in slots if s is not None and s.run is not None]
            if not busy:
                break
            ready = wait([s.conn for s in busy] + [s.process.sentinel for s in busy])
            for i, slot in enumerate(slots):
                if slot is None or slot.run is None or (slot.conn not in ready and slot.process.sentinel not in ready):
                    continue
                record, dead = None, False
                try:
                    if slot.conn.poll():
                        record = slot.conn.recv()
                except (EOFError, OSError):
                    dead = True
                if record is None and not dead and slot.process.sentinel not in ready:
                    continue  # woken for nothing
                if record is None:  # the worker died under its run
                    slot.process.join()
                    record = RunRecord.crashed_worker(slot.run, slot.process.exitcode, slot.started, threads)
                    slot.conn.close()
                    slots[i] = None
                else:
                    slot.run = None
                yield record
        finished = True
    finally:
        # Normal end: ask each worker to exit. Ctrl-C or an error in the driver: stop them now; a run cut off
        # resumes from its last checkpoint on the next launch.
        for slot in slots:
            if slot is not None:
                slot.stop(kill=not finished)
