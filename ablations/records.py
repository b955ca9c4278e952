"""The run record: one line of `results.jsonl` per finished run, built here and nowhere else.

    RunRecord.finished(run, result, started, threads)     train() returned (status ok or diverged)
    RunRecord.failed(run, err, started, threads)          train() raised: the error and its traceback
    RunRecord.crashed_worker(run, exitcode, started, threads)   the worker process died under the run
    RunRecord.failed_group(run, nproc, err, started, threads)   a data-parallel group's rank crashed outright
    RunRecord.training_failed(run, failure)               the training this run scores failed (`failure`, the
                                                          record of the run that tried it): not tried again
    RunRecord.lost_task(run, reason, attempts, started, threads)   a Ray task lost to the system on every attempt
    record.to_json()                                      the dict the driver appends (`Store.append`)

Fields (JSON keys; a key whose value is None is left out, except `error` and `final`, always present):
    run_id, study, variant, levels, seed   the run as `RunSpec` gives it
    config           the run's configuration (`vggcore.config.RunConfig.to_json`): as training resolved it for a
                     finished run (num_classes from the dataset), as the study resolved it for a failed one
    started          ISO time (UTC) the run started
    status           ok, diverged or failed
    error            None, or what went wrong in words ("TypeName: message" for a raised error)
    history          one dict per finished epoch (empty for a failure)
    final            the final metrics (None unless ok); a run with an eval section has its protocol's test
                     errors and loss as test_top1_error, test_top5_error and test_loss
    provenance       versions, commit, machine, device (`vggcore.provenance`)
    timing           {"seconds": wall time of the run, "threads": torch threads it had}
    diverged_epoch   the epoch whose loss was not finite (diverged runs)
    resumed_from_epoch, world_size   from train()'s result; a failure gets 0 and its configured train.nproc
    seed_scheme      how the run's random streams were derived (vggcore.seeds), when train() says
    traceback        the last frames of a raised error
    exit_signal, exit_code   how a worker process died
    attempts         a Ray task lost to the system: how many times it was submitted
    no_space         the run failed for lack of disk space: the driver stops the study and never writes this
                     record, so the same command resumes the run from its last checkpoint once there is room
    executor         local or ray, set by the driver as it appends the record
    train_id         runs with an eval section: the id of the training they score (`RunSpec.train_id`); the
                     runs of a study that share it share their weights
    evaluation       runs with an eval section that finished: the protocol entry (`vggcore.evaluate.runs`:
                     protocol, scales, flip, crops, views, errors, ...) plus training_test, the test errors and
                     loss the training itself recorded

Records are read back as the dicts they were written as (`Store.read`): older records may lack later keys, so
readers use `.get`.
"""

from __future__ import annotations

import errno
import signal
import time
import traceback
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from typing import Any


from .study import RunSpec

# final's test metrics -> the protocol entry's figures that replace them in a run with an eval section
PROTOCOL_METRICS = {"test_top1_error": "top1_error", "test_top5_error": "top5_error", "test_loss": "loss"}
ALWAYS = ("error", "final")   # written even when None: "no error", "no final metrics"
TRACEBACK_FRAMES = 8


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    study: str
    variant: str
    levels: dict[str, str]
    seed: int
    config: dict[str, dict[str, Any]]
    started: str                         # ISO time, UTC
    status: str                          # one of STATUSES
    error: str | None                    # None when the run finished
    history: list[dict]                  # one row per finished epoch
    final: dict | None                   # final metrics of an ok run
    provenance: dict                     # where the result came from
    timing: dict                         # seconds (wall), threads
    diverged_epoch: int | None = None    # diverged runs: the epoch whose loss was not finite
    resumed_from_epoch: int = 0          # epochs found in the run's checkpoint when it started
    world_size: int = 1                  # processes that trained the run
    seed_scheme: str | None = None       # the seed derivation train() reports it ran under
    traceback: str | None = None         # a raised error's last frames
    exit_signal: str | None = None       # a dead worker: the signal that killed it
    exit_code: int | None = None         # a dead worker: its exit code (negative: the signal)
    no_space: bool | None = None         # failed on a full disk (ENOSPC, EDQUOT): every next run would too
    attempts: int | None = None          # a Ray task lost on every submission: how many there were
    executor: str | None = None          # set by the driver: local or ray
    train_id: str | None = None          # runs with an eval section: the training they score
    evaluation: dict | None = None       # runs with an eval section: the protocol's entry
    extra: dict = field(default_factory=dict, repr=False)   # keys a later writer added, kept as they were read
    nulls: tuple[str, ...] = field(default=(), repr=False)  # keys read as an explicit null (older writers), kept

    # ------------------------------------------------------------------------------------------ reading
    @classmethod
    def from_json(cls, data: dict) -> RunRecord:
        """A record as `Store.read` finds it in results.jsonl (`store.well_formed` has checked its types). Keys
        older records lack take the value that reads them as they were meant (no history, no final metrics, an
        empty config); keys this code does not know are kept in `extra` and written back unchanged."""
        known = {f.name for f in fields(cls)} - {"extra", "nulls"}
        given = {k: v for k, v in data.items() if k in known}
        defaults = {"variant": "", "levels": {}, "seed": None, "config": {}, "started": None, "status": None,
                    "error": None, "history": [], "final": None, "provenance": {}, "timing": {}}
        for key, value in defaults.items():
            if given.get(key) is None and key not in ALWAYS:
                given[key] = value
            given.setdefault(key, value)
        nulls = tuple(k for k in known if k in data and data[k] is None and k not in ALWAYS)
        return cls(**given, extra={k: v for k, v in data.items() if k not in known}, nulls=nulls)

    def metric(self, name: str) -> float | None:
        """A final metric (test_top1_error, ...), None where the run has none (it failed, or predates the metric)."""
        value = (self.final or {}).get(name)
        return None if value is None else float(value)

    @property
    def seconds(self) -> float | None:
        """The run's wall time, as the driver measured it."""
        return self.timing.get("seconds")

    @property
    def threads(self) -> int | None:
        """The torch threads the run trained on."""
        return self.timing.get("threads")

    @property
    def num_classes(self) -> int | None:
        """The network's classes as the record's config has them (training resolves them from the dataset)."""
        classes = (self.config.get("model") or {}).get("num_classes")
        return classes if isinstance(classes, int) and not isinstance(classes, bool) else None

    # ------------------------------------------------------------------------------------ constructors
    @classmethod
    def finished(cls, run: RunSpec, result: dict, started: float, threads: int,
                 evaluation: dict | None = None) -> RunRecord:
        """A run that train() returned: ok or diverged, with its history and metrics. `evaluation`: the entry of
        the run's test protocol (`vggcore.evaluate.runs.evaluate_run`), whose errors become the final test
        metrics; the training's own stay in the entry as training_test."""
        final = result["final"]
        if evaluation is not None and final is not None:
            evaluation = {**evaluation, "training_test": {k: final.get(k) for k in PROTOCOL_METRICS}}
            final = {**final, **{k: evaluation[v] for k, v in PROTOCOL_METRICS.items()}}
        # the configuration training resolved (the network's classes are the dataset's), the run's eval section
        resolved = {**result.get("config", run.config), **({"eval": run.config["eval"]} if "eval" in run.config else {})}
        return cls(**{**_head(run, started), "config": resolved}, status=result["status"], error=result.get("error"),
                   history=result["history"], final=final, provenance=result["provenance"],
                   timing=_timing(started, threads), diverged_epoch=result.get("diverged_epoch"),
                   resumed_from_epoch=result.get("resumed_from_epoch", 0), world_size=result.get("world_size", 1),
                   seed_scheme=result.get("seed_scheme"), evaluation=evaluation)

    @classmethod
    def training_failed(cls, run: RunSpec, failure: RunRecord) -> RunRecord:
        """A run whose training (shared with `failure`'s run, which tried it in this launch) failed: recorded as
        failed with that error, not tried a second time."""
        return cls._failure(run, f"its training failed (the run of {failure.variant} seed {failure.seed}): "
                                 f"{failure.error}", time.time(), failure.timing.get("threads"),
                            traceback=failure.traceback, exit_signal=failure.exit_signal,
                            exit_code=failure.exit_code, world_size=failure.world_size)

    @classmethod
    def failed(cls, run: RunSpec, err: BaseException, started: float, threads: int) -> RunRecord:
        """A run whose training raised `err`: the study goes on, the failure is the record."""
        frames = "".join(traceback.format_exception(type(err), err, err.__traceback__, limit=TRACEBACK_FRAMES))
        no_space = isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT) or None
        return cls._failure(run, f"{type(err).__name__}: {err}", started, threads, traceback=frames,
                            no_space=no_space)

    @classmethod
    def crashed_worker(cls, run: RunSpec, exitcode: int | None, started: float, threads: int) -> RunRecord:
        """A run whose worker process died under it (OOM killer, segfault, SIGKILL)."""
        name = None
        if exitcode is not None and exitcode < 0:
            try:
                name = signal.Signals(-exitcode).name
            except ValueError:
                name = f"signal {-exitcode}"
            error = f"the worker process was killed by {name} (signal {-exitcode}) during this run"
        else:
            error = f"the worker process exited with code {exitcode} during this run"
        if name == "SIGKILL":
            error += " (the kernel's OOM killer sends SIGKILL: check memory)"
        return cls._failure(run, error, started, threads, exit_signal=name, exit_code=exitcode)

    @classmethod
    def failed_group(cls, run: RunSpec, nproc: int, err: BaseException, started: float,
                     threads: int | None) -> RunRecord:
        """A data-parallel run whose group of `nproc` ranks failed as a whole (a rank crashed outright)."""
        text = str(err).strip()
        error = (f"data-parallel group of {nproc} failed: {type(err).__name__}: "
                 f"{text.splitlines()[0] if text else ''}")[:500]
        return cls._failure(run, error, started, threads, world_size=nproc)

    @classmethod
    def lost_task(cls, run: RunSpec, reason: str, attempts: int, started: float, threads: int | None) -> RunRecord:
        """A run whose Ray task was lost to the system (its worker killed, its node gone) on each of `attempts`
        submissions: the retries ran out (`ablations.integrations.ray_executor`)."""
        error = (f"the Ray task of this run was lost {attempts} time(s) and the retries ran out; last: "
                 f"{reason}")[:500]
        return cls._failure(run, error, started, threads, attempts=attempts)

    @classmethod
    def _failure(cls, run: RunSpec, error: str, started: float, threads: int | None, **extra) -> RunRecord:
        extra.setdefault("world_size", int(run.config["train"].get("nproc", 1)))
        return cls(**_head(run, started), status="failed", error=error, history=[], final=None,
                   provenance=_provenance(run.config["train"].get("device", "cpu")),
                   timing=_timing(started, threads), **extra)

    # --------------------------------------------------------------------------------------- changes
    def with_executor(self, executor: str) -> RunRecord:
        return replace(self, executor=executor)

    def with_seconds(self, seconds: float) -> RunRecord:
        """The record with another wall time (a group's, start-up included)."""
        return replace(self, timing={**self.timing, "seconds": seconds})

    def to_json(self) -> dict:
        data = asdict(self)
        extra, nulls = data.pop("extra"), data.pop("nulls")
        return {**{k: v for k, v in data.items() if v is not None or k in ALWAYS or k in nulls}, **extra}


def _head(run: RunSpec, started: float) -> dict:
    return {"run_id": run.run_id, "study": run.study, "variant": run.variant, "levels": run.levels,
            "seed": run.seed, "config": run.config,
            "started": datetime.fromtimestamp(started, timezone.utc).isoformat(),
            "train_id": run.train_id if "eval" in run.config else None}


def _timing(started: float, threads: int | None) -> dict:
    return {"seconds": time.time() - started, "threads": threads}


def _provenance(device: str) -> dict:
    from vggcore.provenance import provenance

    try:
        return provenance(device)
    except Exception:  # a broken device must not hide the failure being recorded
        return provenance("cpu")
