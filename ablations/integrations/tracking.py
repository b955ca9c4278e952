"""A study's runs in the tracking stores users browse: MLflow and TensorBoard (the optional extras).

    python -m ablations export runs/demo --mlflow sqlite:///mlflow.db --tensorboard tb/   # afterwards
    python -m ablations run STUDY.toml --out runs/demo --track mlflow:sqlite:///mlflow.db   # live
    [study] track = ["mlflow:sqlite:///mlflow.db", "tensorboard:tb"]                          # live, from the file

A target is `KIND:WHERE` (`parse_target`): `mlflow:URI` (any MLflow tracking URI) or `tensorboard:LOGDIR`.
One record of results.jsonl becomes one tracked run (`TrackedRun.of`), the same content in both stores:

    name      STUDY/VARIANT/seedN
    params    the resolved config, flattened (model.arch, train.lr, ...); TensorBoard: a text summary "config"
    tags      run_id, study, variant, seed, status, error, git_commit, machine, device, executor, started,
              factor.NAME (the run's level of each factor); vggbench.folder, vggbench.record (for matching)
    metrics   every numeric value of each history row at step = its epoch (train_loss, val_top1_error, lr, ...);
              the final metrics as final/NAME and the run's wall time as final/run_seconds, at the last epoch
    hparams   TensorBoard's HParams dashboard: the factors, seed and status; the study's metric (final/METRIC)

Matching (`sync`): a tracked run carries the run id, the study folder it came from and a digest of its record.
A run whose digest is in the store already is skipped; one whose record changed (a failed run retried) is
replaced; one a killed export left half-written (no digest yet) is written again. So exporting twice adds nothing,
and a study that grew exports only its new runs. The backends live in `tracking_mlflow` and
`tracking_tensorboard` (opened by `export.open_all`); this module knows neither package.
"""

from __future__ import annotations

import hashlib
import json
import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence
from urllib.parse import urlparse

from vggcore.errors import UserError

if TYPE_CHECKING:   # annotations only: the study file reads this module's targets, and records import the study
    from ..records import RunRecord

KINDS = ("mlflow", "tensorboard")
DIGEST_TAG = "vggbench.record"    # digest of the record a tracked run was written from
FOLDER_TAG = "vggbench.folder"    # the study folder (resolved path) the record came from
FINAL = "final/"                  # prefix of the final metrics, apart from the per-epoch ones of the same name


class TrackingError(UserError, ValueError):
    """A tracking target that cannot be used (bad syntax, unreachable, not writable), or an export cut short."""


@dataclass(frozen=True)
class Target:
    kind: str      # one of KINDS
    where: str     # the MLflow tracking URI, or the TensorBoard log folder

    def __str__(self) -> str:
        return f"{self.kind}:{self.where}"

    def export_option(self) -> str:
        """The `export` option that writes to this target, for messages that say how to catch up later."""
        return f"--{self.kind} {self.where}"


def parse_target(spec: Any, where: str = "--track") -> Target:
    """`mlflow:URI` or `tensorboard:LOGDIR`; anything else is a TrackingError naming `where` and the forms."""
    kind, _, rest = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if kind not in KINDS or not rest.strip():
        raise TrackingError(f"{where} {spec!r} is not a tracking target; give mlflow:URI (e.g. "
                            "mlflow:sqlite:///mlflow.db, mlflow:http://127.0.0.1:5000) or tensorboard:LOGDIR")
    return Target(kind, rest.strip())


def check_reachable(url: str, what: str, fix: str, timeout: float = 5.0,
                    error: type[UserError] = TrackingError) -> None:
    """Refuse at once (`error`, one line) a host:port where nothing listens: MLflow's client and ray.init would
    retry there for minutes."""
    parsed = urlparse(url if "://" in url else f"tcp://{url}")
    try:
        port = parsed.port
    except ValueError:
        raise error(f"{what} {url!r} has no valid port; {fix}") from None
    port = port or {"http": 80, "https": 443}.get(parsed.scheme)
    if not parsed.hostname or not port:
        raise error(f"{what} {url!r} names no host and port; {fix}")
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout).close()
    except OSError as err:
        raise error(f"{what} {url!r}: nothing answers at {parsed.hostname}:{port} "
                            f"({err.strerror or err}); {fix}") from None


# ------------------------------------------------------------------------------------------ run content
@dataclass(frozen=True)
class StudyInfo:
    """What the stores need about the study as a whole."""
    name: str                              # the study's name: MLflow experiment, TensorBoard top folder
    metric: str                            # the study's metric: the HParams metric is final/METRIC
    folder: str                            # the study folder, resolved: runs are matched within it
    factors: dict[str, tuple[str, ...]]    # factor -> its levels (the HParams domains)
    statuses: tuple[str, ...] = ()         # the statuses a run can have (records.STATUSES)


@dataclass(frozen=True)
class TrackedRun:
    run_id: str
    name: str                                   # STUDY/VARIANT/seedN
    variant: str
    seed: int
    status: str                                 # ok, diverged, failed
    digest: str                                 # of the record: the same record gives the same digest
    started: float                              # seconds since the epoch
    ended: float
    params: dict[str, str]                      # flattened config
    tags: dict[str, str]
    metrics: list[tuple[str, float, int, float]] = field(repr=False)   # (key, value, step, time)
    hparams: dict[str, Any] = field(repr=False)                        # factors, seed, status
    config: dict = field(repr=False)                                   # the resolved config as recorded

    @classmethod
    def of(cls, record: RunRecord, folder: str) -> TrackedRun:
        """The tracked run of one record as `Store.read` returns it (typed; an older record's missing keys read
        as `RunRecord.from_json` gives them)."""
        provenance = record.provenance or {}
        started = _seconds(record.started)
        history = record.history
        metrics, clock = [], started
        for number, row in enumerate(history, start=1):
            step = row.get("epoch") if _number(row.get("epoch")) else number
            clock += row.get("epoch_seconds", 0) if _number(row.get("epoch_seconds")) else 0
            metrics += [(key, float(value), int(step), clock) for key, value in row.items()
                        if key != "epoch" and _number(value)]
        ended = started + (record.seconds if _number(record.seconds) else 0)
        last = len(history)
        final = {**(record.final or {}), "run_seconds": record.seconds}
        metrics += [(FINAL + key, float(value), last, ended) for key, value in final.items() if _number(value)]
        levels = record.levels or {}
        machine = provenance.get("machine") or {}
        tags = {"run_id": record.run_id, "study": record.study, "variant": record.variant,
                "seed": record.seed, "status": record.status, "error": record.error,
                "git_commit": provenance.get("git_commit"), "machine": machine.get("hostname"),
                "device": (provenance.get("device") or {}).get("name"), "executor": record.executor,
                "started": record.started, "diverged_epoch": record.diverged_epoch,
                "resumed_from_epoch": record.resumed_from_epoch,
                **{f"factor.{name}": level for name, level in levels.items()}, FOLDER_TAG: folder}
        seed = record.seed
        return cls(run_id=record.run_id, name=run_name(record), variant=str(record.variant),
                   seed=seed if isinstance(seed, int) else -1, status=str(record.status),
                   digest=digest(record), started=started, ended=ended, params=flatten(record.config or {}),
                   tags={k: str(v) for k, v in tags.items() if v is not None}, metrics=metrics,
                   hparams={**{str(k): str(v) for k, v in levels.items()}, "seed": seed, "status": str(record.status)},
                   config=record.config or {})


def run_name(record: RunRecord) -> str:
    return f"{record.study}/{record.variant}/seed{record.seed}"


def digest(record: RunRecord) -> str:
    """The same record (as the driver wrote it, or as read back from results.jsonl) gives the same digest."""
    blob = json.dumps(record.to_json(), default=str, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """{"model": {"arch": "A"}} -> {"model.arch": "A"}; values as JSON (true, null, [1, 2]), strings as they are."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value if isinstance(value, str) else json.dumps(value, default=str)
    return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _seconds(iso: Any) -> float:
    try:
        return datetime.fromisoformat(iso).timestamp()
    except (TypeError, ValueError):
        return 0.0


# -------------------------------------------------------------------------------------------- backends
class Backend(Protocol):
    target: Target
    failures: tuple[type[BaseException], ...]   # how the store says it failed (anything else is a bug)

    def tracked(self, run_ids: set[str] | None = None) -> dict[str, str]:
        """run id -> digest of each run of this study folder in the store ('' for one left half-written);
        `run_ids`: only these (the driver asks about one run at a time)."""

    def check(self, runs: Sequence[TrackedRun]) -> None:
        """Refuse, before anything is written, runs this store cannot take (TrackingError)."""

    def write(self, run: TrackedRun, replace: bool) -> None:
        """Write one run; `replace`: first remove this folder's older or half-written copy of it."""

    def close(self) -> None: ...


@dataclass
class Counts:
    new: int = 0        # runs the store did not have
    updated: int = 0    # runs whose record changed, or that a killed writer left half-written
    kept: int = 0       # runs already there as recorded

    def __str__(self) -> str:
        return f"{self.new} new, {self.updated} updated, {self.kept} already there"


def sync(backend: Backend, runs: Sequence[TrackedRun],
         progress: Callable[[TrackedRun], None] = lambda run: None) -> Counts:
    """Write the runs the store lacks or holds in another version; TrackingError if the store fails midway
    (the runs written so far are whole and kept: the same command goes on from there)."""
    tracked = backend.tracked({runs[0].run_id} if len(runs) == 1 else None)
    todo = [r for r in runs if tracked.get(r.run_id) != r.digest]
    counts = Counts(kept=len(runs) - len(todo))
    backend.check(todo)
    for number, run in enumerate(todo):
        try:
            backend.write(run, replace=run.run_id in tracked)
        except backend.failures as err:  # the store went away or refused midway: say where it stopped
            raise TrackingError(f"writing to {backend.target} stopped at run {number + 1} of {len(todo)} "
                                f"({run.name}): {type(err).__name__}: {first_line(err)}; the runs written are "
                                "kept, run the same command again to write the rest") from err
        if run.run_id in tracked:
            counts.updated += 1
        else:
            counts.new += 1
        progress(run)
    return counts


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else "")[:300]
