"""Running one study run, in this process, a worker process or a Ray task. Workers never write results:
they return the record and the driver appends it."""

from __future__ import annotations

import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from .study import RunSpec


def execute(spec: dict, run_dir: str, threads: int | None = None) -> dict:
    """Train one run (resuming from its checkpoint in `run_dir`) and return its record. Never raises for a
    failing run: the failure is the record."""
    import torch

    from vggcore.config import VGGConfig
    from vggcore.data import DataConfig
    from vggcore.train import TrainConfig, train

    if threads:
        torch.set_num_threads(threads)
    run = RunSpec(**spec)
    started = time.time()
    record = {"run_id": run.run_id, "study": run.study, "variant": run.variant, "levels": run.levels,
              "seed": run.seed, "config": run.config,
              "started": datetime.fromtimestamp(started, timezone.utc).isoformat()}
    try:
        result = train(VGGConfig(**run.config["model"]), DataConfig(**run.config["data"]),
                       TrainConfig(**run.config["train"]), out=Path(run_dir), progress=False)
        record.update(status=result["status"], error=result.get("error"), history=result["history"],
                      final=result["final"], diverged_epoch=result.get("diverged_epoch"),
                      provenance=result["provenance"], resumed_from_epoch=result.get("resumed_from_epoch", 0))
    except KeyboardInterrupt:
        raise
    except Exception as err:  # a failing run is recorded; the study goes on
        record.update(status="failed", error=f"{type(err).__name__}: {err}",
                      traceback=traceback.format_exc(limit=8), history=[], final=None,
                      provenance=_provenance_safe(run.config["train"].get("device", "cpu")))
    record["timing"] = {"seconds": time.time() - started, "threads": torch.get_num_threads()}
    return record


def _provenance_safe(device: str) -> dict:
    from vggcore.provenance import provenance

    try:
        return provenance(device)
    except Exception:  # a broken device must not hide the original failure
        return provenance("cpu")
