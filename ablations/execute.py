"""Running one study run, in this process, a worker process or a Ray task. Workers never write results:
they return the record (`records.RunRecord`) and the driver appends it.

A run with an eval section trains (or finds its training finished in its run folder, which runs differing in the
eval section alone share: `RunSpec.train_id`) and then scores the checkpoint under its protocol; the protocol's
errors are the record's final test metrics. Its result is kept in the record only: several runs scoring one
folder never write to it.

A run with `train.nproc = N > 1` is a data-parallel group: `execute_run` starts N ranks on this machine through
torchrun's launcher API (torch.distributed.launcher), each calling `execute`; rank 0's record is the run's.
"""

from __future__ import annotations

import time
from pathlib import Path

from .records import RunRecord
from .study import RunSpec


def execute(spec: dict, run_dir: str, threads: int | None = None) -> RunRecord:
    """Train one run (resuming from its checkpoint in `run_dir`), score it under its eval section's protocol if it
    has one, and return its record. Never raises for a failing run: the failure is the record."""
    import os

    from vggcore.threads import torch_threads
    from vggcore.train.loop import train

    run = RunSpec(**spec)
    started = time.time()
    with torch_threads(threads) as count:   # this run's share of the cores; the caller's count after it
        try:
            config = run.run_config
            result = train(config.model, config.data, config.train, out=Path(run_dir), progress=False)
            evaluation = None
            # Rank 0 alone scores a data-parallel run, in one process, once the group has finished.
            if config.eval is not None and result["status"] == "ok" and int(os.environ.get("RANK", "0")) == 0:
                from vggcore.evaluate.runs import evaluate_run

                evaluation = evaluate_run(run_dir, [config.eval])[0]
        except KeyboardInterrupt:
            raise
        except Exception as err:  # a failing run is recorded; the study goes on
            return RunRecord.failed(run, err, started, count)
    # the threads the run trained on: a resumed run keeps its checkpoint's (vggcore.train.loop.resume_threads)
    threads_used = (result.get("rank_threads") or [count])[0]
    return RunRecord.finished(run, result, started, threads_used, evaluation)


def execute_run(spec: dict, run_dir: str, threads: int | None = None) -> RunRecord:
    """`execute` for one process, or a group of `train.nproc` ranks on this machine sharing `threads` cores."""
    nproc = int(spec["config"]["train"].get("nproc", 1))
    if nproc <= 1:
        return execute(spec, run_dir, threads)
    import uuid

    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    # What `torchrun --standalone` does: a private rendezvous on a free local port, no restarts (a failed rank
    # fails the run; rerunning the study resumes it from its checkpoint).
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1,
                          start_method="spawn")
    per_rank_threads = max(1, threads // nproc) if threads else None
    started = time.time()
    try:
        results = elastic_launch(config, execute)(spec, run_dir, per_rank_threads)
    except Exception as err:  # ChildFailedError: a rank crashed outright
        return RunRecord.failed_group(RunSpec(**spec), nproc, err, started, per_rank_threads)
    return results[0].with_seconds(time.time() - started)  # the group's wall time, start-up included
