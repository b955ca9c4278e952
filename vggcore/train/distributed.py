"""Data parallelism as a thin layer over single-process training, driven by the environment torchrun sets.

    torchrun --standalone --nproc_per_node=4 -m vggcore train --arch D --device cuda ... --out runs/d
    torchrun --nnodes=2 --nproc_per_node=4 --rdzv-backend=c10d --rdzv-endpoint=HOST:29400 --rdzv-id=d \\
        -m vggcore train ... --out /shared/runs/d

Without RANK/WORLD_SIZE in the environment nothing here starts a process group and training is the
single-process path, unchanged. With them (torchrun, torch.distributed.run, elastic launch), `setup` joins the
group: gloo on CPU with the machine's cores split between the ranks on this node, nccl on CUDA with one GPU per
rank (cuda:LOCAL_RANK). Collectives time out (default 10 min), so a rank that died ends its peers with an error
instead of a hang; torchrun's agent also stops the group when one worker exits.
"""

from __future__ import annotations

import datetime

import torch
import torch.distributed as dist

from vggcore.world import DistributedError, World, WorldError, env_world

BACKENDS = ("auto", "gloo", "nccl")
DEFAULT_TIMEOUT_S = 600.0   # a lost peer ends a collective after this long


def choose_backend(device: str, requested: str = "auto") -> str:
    """gloo for CPU, nccl for CUDA; a requested backend that cannot serve the device is refused."""
    if requested not in BACKENDS:
        raise WorldError(f"unknown distributed backend {requested!r}; choose one of {', '.join(BACKENDS)}")
    kind = device.split(":")[0]
    if requested == "nccl" and (kind != "cuda" or not torch.cuda.is_available()):
        raise WorldError("backend nccl needs CUDA devices (--device cuda on a machine with GPUs); "
                         f"this run's device is {device!r}{'' if torch.cuda.is_available() else ' and no GPU is visible'}"
                         "; use gloo on CPU")
    if kind not in ("cpu", "cuda"):
        raise WorldError(f"data-parallel training runs on cpu (gloo) or cuda (nccl), not {device!r}")
    if requested == "auto":
        return "nccl" if kind == "cuda" else "gloo"
    return requested


def setup(device: str, requested_backend: str = "auto", threads: int | None = None,
          timeout_s: float = DEFAULT_TIMEOUT_S, *, rank: int | None = None, world_size: int | None = None,
          address: str | None = None) -> World:
    """Join torchrun's process group (or use the one already started); outside torchrun, a world of one.

    `rank`, `world_size` and `address` ("HOST:PORT" of rank 0's store) together start a group of processes that
    a program spawned on this machine itself (the scaling benchmark), not torchrun; the environment is not read.
    """
    explicit = (rank, world_size, address)
    if any(v is not None for v in explicit) and not all(v is not None for v in explicit):
        raise ValueError("setup: give rank, world_size and address together, or none of them")
    env = {"RANK": rank, "WORLD_SIZE": world_size, "LOCAL_RANK": rank, "LOCAL_WORLD_SIZE": world_size} \
        if rank is not None else env_world()
    if env is None and not dist.is_initialized():
        return World(device=device, threads=threads)
    if env is not None:
        rank, world_size = env["RANK"], env["WORLD_SIZE"]
        local_rank, local_world_size = env["LOCAL_RANK"], env["LOCAL_WORLD_SIZE"]
    else:  # a group started by the caller (tests, benchmarks): one machine
        rank, world_size = dist.get_rank(), dist.get_world_size()
        local_rank, local_world_size = rank, world_size
    backend = choose_backend(device, requested_backend)
    if device.split(":")[0] == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise WorldError(f"local rank {local_rank} has no GPU: this machine shows {torch.cuda.device_count()}; "
                             "start at most one process per GPU (--nproc_per_node)")
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(device)
    else:
        from vggcore.threads import cpu_count

        # Ranks on one machine share its cores: each takes its share, so they do not oversubscribe them.
        threads = threads or max(1, cpu_count() // local_world_size)
    owns = False
    if not dist.is_initialized():
        where = {"init_method": f"tcp://{address}", "rank": rank, "world_size": world_size} if address else {}
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s), **where,
                                **({"device_id": torch.device(device)} if backend == "nccl" else {}))
        owns = True
    elif dist.get_backend() != backend:
        raise WorldError(f"the process group runs {dist.get_backend()}, but device {device!r} needs {backend}")
    return World(rank, world_size, local_rank, local_world_size, backend, device, threads, owns)


def teardown(world: World) -> None:
    if world.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(world: World, values: list[float]) -> list[float]:
    """Element-wise sum over the ranks (float64, so image counts stay exact)."""
    if not world.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=world.device if world.backend == "nccl" else "cpu")
    guarded(world, "summing metrics", lambda: dist.all_reduce(t))
    return t.tolist()


def all_gather_ints(world: World, value: int) -> list[int]:
    if not world.distributed:
        return [value]
    t = torch.tensor([value], dtype=torch.int64, device=world.device if world.backend == "nccl" else "cpu")
    out = [torch.zeros_like(t) for _ in range(world.world_size)]
    guarded(world, "gathering per-rank settings", lambda: dist.all_gather(out, t))
    return [int(x) for x in out]


def guarded(world: World, doing: str, fn):
    """Run a collective; a broken group becomes one clear DistributedError (in one process: `fn` as is)."""
    if not world.distributed:
        return fn()
    try:
        return fn()
    except DistributedError:
        raise
    except (RuntimeError, OSError) as err:
        if not _looks_distributed(err):
            raise
        raise DistributedError(broken_message(world, doing, err)) from err


def _looks_distributed(err: BaseException) -> bool:
    text = f"{type(err).__name__} {err}".lower()
    return isinstance(err, getattr(dist, "DistError", ())) or any(
        k in text for k in ("gloo", "nccl", "connection", "timed out", "timeout", "peer", "socket", "broken pipe",
                            "process group", "store"))


def broken_message(world: World, doing: str, err: BaseException) -> str:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return (f"rank {world.rank} of {world.world_size} lost the process group while {doing} ({first[:200]}); "
            "another rank probably died or was killed. Run the same command again to resume from the last "
            "checkpoint")


def wrap_model(model: torch.nn.Module, world: World, sync_bn: bool) -> torch.nn.Module:
    """DistributedDataParallel over the model (SyncBatchNorm first when asked); the model as is in one process."""
    if not world.distributed:
        return model
    if sync_bn:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [torch.device(world.device).index] if world.backend == "nccl" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


