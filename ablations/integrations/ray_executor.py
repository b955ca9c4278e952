"""The Ray executor: one Ray task per run, on a local Ray this driver starts or on a cluster it joins.

    python -m ablations run STUDY.toml --out /shared/runs/demo --executor ray --ray-address HEAD:6379

Tasks return records and the driver alone writes them (`runner`). A task lost to the system, its worker process
killed or its node gone (`SYSTEM_FAILURES`: WorkerCrashedError, NodeDiedError, ...), is submitted again, at most
`retries` times (`--ray-retries`, default `RETRIES`), and Ray places it on the nodes that remain; it resumes from
the run's last checkpoint in the shared run folder. When the retries run out the run is recorded `failed` with
the reason (`RunRecord.lost_task`), and the study goes on. A run's own failure is never retried here: the task
returned it as a `failed` record already (`--retry-failed` runs it again).

On a cluster the study folder must be on a filesystem every node mounts at the same path (NFS and the like): the
tasks write checkpoints there and a retried run resumes from them. Before any run is submitted, a probe task on
every node reads a file the driver wrote into the folder and writes one back into runs/; a node that cannot is a
one-line error, not a study of lost runs.

A local Ray (no address) binds to 127.0.0.1 (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 unless set): it serves this
machine alone. A cluster on 127.0.0.1 needs the same variable in the driver's environment, or the driver looks
for its node at the machine's network address.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

from vggcore.errors import MissingPackage, UserError
from vggcore.threads import cpu_count

from ..execute import execute_run
from ..records import RunRecord
from ..store import Store
from ..study import RunSpec, Study
from .tracking import check_reachable, first_line

RETRIES = 2                # submissions of a lost run after its first, by default
PROBE_SECONDS = 120        # how long every node has to answer the folder probe
PROBE = ".ray-probe-"
SYSTEM_FAILURES = ("WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "ObjectLostError",
                   "OutOfMemoryError", "RaySystemError")
LOOPBACK = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


class RayClusterError(UserError, ConnectionError):
    """No Ray cluster at the address given, or a cluster whose nodes cannot use the study folder."""


def check_folder(root: str, token: str) -> tuple[str | None, str | None]:
    """Run on a node by the probe task: (its reply file, None), or (None, what is wrong) when the node cannot
    see the driver's folder or write into its runs/ (where the runs write their checkpoints)."""
    folder = Path(root)
    try:
        seen = (folder / f"{PROBE}{token}").read_text()
    except OSError as err:
        return None, f"cannot see {root} ({err.strerror or err})"
    if seen != token:
        return None, f"sees another folder at {root}"
    runs = folder / "runs"
    reply = runs / f"{PROBE}{token}-{uuid.uuid4().hex[:8]}"
    try:
        runs.mkdir(exist_ok=True)
        reply.write_text(token)
    except OSError as err:
        return None, f"cannot write into {runs} ({err.strerror or err})"
    return str(reply), None


class RayRuns:
    """The records of `todo` as their tasks finish. Connects (and probes the folder) when made, so a bad address
    or folder is refused before the driver writes anything; submits the runs when iterated; `close()` cancels
    what is left and stops a Ray it started."""

    def __init__(self, todo: list[RunSpec], store: Store, study: Study, options,
                 report: Callable[[str], None]) -> None:
        self.report, self.retries = report, options.ray_retries
        self.started_here = _connect(options.ray_address or os.environ.get("RAY_ADDRESS"))
        import ray

        self.ray = ray
        self.refs: dict = {}  # ref -> (run, attempt, first submitted)
        self.system = tuple(getattr(ray.exceptions, name) for name in SYSTEM_FAILURES
                            if hasattr(ray.exceptions, name))
        try:
            _probe(ray, store.root.resolve())
            self.num_cpus = options.num_cpus if options.num_cpus is not None else study.num_cpus
            self.num_gpus = options.num_gpus if options.num_gpus is not None else study.num_gpus
            self.remote = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=0)(execute_run)
            self.store, self.todo = store, list(todo)
        except BaseException:
            self.close()
            raise

    def _threads(self, run: RunSpec) -> int:
        return max(1, int(self.num_cpus * int(run.config["train"].get("nproc", 1))))

    def _submit(self, run: RunSpec, attempt: int, started: float) -> None:
        # A run of train.nproc = N reserves N times the resources and starts its N ranks on the task's node.
        n = int(run.config["train"].get("nproc", 1))
        task = self.remote.options(num_cpus=self.num_cpus * n, num_gpus=self.num_gpus * n) if n > 1 else self.remote
        ref = task.remote(run.to_json(), str(self.store.run_dir(run).resolve()), self._threads(run))
        self.refs[ref] = (run, attempt, started)

    def __iter__(self) -> Iterator[RunRecord]:
        ray = self.ray
        # Submitted only now, once the driver has checked the folder's manifest: a refused folder runs nothing.
        for run in self.todo:
            self._submit(run, 1, time.time())
        self.todo = []
        while self.refs:
            done, _ = ray.wait(list(self.refs), num_returns=1)
            for ref in done:
                run, attempt, started = self.refs.pop(ref)
                try:
                    record = ray.get(ref)
                except self.system as err:
                    reason = f"{type(err).__name__}: {first_line(err)}"
                    if attempt <= self.retries:
                        self.report(f"{run.variant} seed {run.seed}: its Ray task was lost ({reason}); submitting "
                                    f"it again, retry {attempt} of {self.retries}")
                        self._submit(run, attempt + 1, started)
                        continue
                    record = RunRecord.lost_task(run, reason, attempt, started, self._threads(run))
                except ray.exceptions.RayError as err:  # the task itself raised, or cannot run: no retry
                    cause = getattr(err, "cause", None)
                    record = RunRecord.failed(run, cause if isinstance(cause, Exception) else err, started,
                                              self._threads(run))
                yield record

    def close(self) -> None:
        for ref in list(self.refs):
            self.ray.cancel(ref, force=True)
        self.refs.clear()
        if self.started_here:
            self.ray.shutdown()
            self.started_here = False


def _connect(address: str | None) -> bool:
    """Join the cluster at `address`, or start a local Ray; True when this call started Ray in this process."""
    if not address and "ray" not in sys.modules:
        os.environ.setdefault(LOOPBACK, "0")  # read when ray is imported: a local Ray stays on 127.0.0.1
    try:
        import ray
    except ImportError:
        raise MissingPackage("the Ray executor needs Ray: pip install 'vggbench[ray]'") from None
    if ray.is_initialized():
        return False
    if not address:
        # address="local": a Ray of this process's own, even where `ray start` left a cluster on this machine
        # (ray.init would join that one and refuse num_cpus with a ValueError traceback)
        ray.init(address="local", num_cpus=cpu_count(), include_dashboard=False, logging_level="ERROR",
                 log_to_driver=False)
        return True
    fix = ("start a cluster there (ray start --head), or give the address `ray start --head` printed; a cluster "
           f"on 127.0.0.1 needs {LOOPBACK}=0 in this environment too")
    if address not in ("auto", "local"):
        # ray.init waits for minutes on an address where nothing answers: refuse it at once
        check_reachable(address.removeprefix("ray://") if address.startswith("ray://") else address,
                        "--ray-address", fix, error=RayClusterError)
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    except ConnectionError as err:
        raise RayClusterError(f"--ray-address {address!r}: no Ray cluster joined ({first_line(err)}); {fix}") from None
    return True


def _probe(ray, root: Path) -> None:
    """Every alive node that can run a run must see the driver's folder and write into its runs/."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = uuid.uuid4().hex
    mark = root / f"{PROBE}{token}"
    runs = root / "runs"
    made_runs = not runs.exists()
    replies: list[Path] = []
    mark.write_text(token)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive") and (n.get("Resources") or {}).get("CPU", 0) > 0]
        task = ray.remote(num_cpus=0, max_retries=1)(check_folder)
        refs = {task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote(str(root), token): n for n in nodes}
        ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=PROBE_SECONDS)
        if late:
            node = refs[late[0]]
            raise RayClusterError(f"Ray node {node.get('NodeManagerAddress')} ({node['NodeID'][:8]}) did not run "
                                  f"the check of study folder {root} within {PROBE_SECONDS} s; is the cluster "
                                  "healthy (ray status)?")
        for ref in ready:
            node = refs[ref]
            try:
                reply, problem = ray.get(ref)
            except ray.exceptions.NodeDiedError:
                continue  # gone before it answered: it runs nothing either
            if reply is not None:
                replies.append(Path(reply))
                if not Path(reply).is_file():
                    problem = f"writes into {runs} that the driver does not see"
            if problem:
                raise RayClusterError(
                    f"the Ray workers on node {node.get('NodeManagerAddress')} ({node['NodeID'][:8]}) {problem}: on "
                    "a cluster --out must be a folder on a filesystem every node mounts at the same path (NFS or "
                    "the like), writable by the Ray workers; nothing was run")
    finally:
        mark.unlink(missing_ok=True)
        for reply in replies:
            reply.unlink(missing_ok=True)
        if made_runs and runs.is_dir() and not any(runs.iterdir()):
            runs.rmdir()
