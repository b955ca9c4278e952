"""A data-parallel world as plain data: ranks, sizes, this rank's share of a batch or a split. No torch here, so
configurations can check a batch against a world size cheaply (`vggcore.train.distributed` runs it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from vggcore.errors import UserError


ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")


class DistributedError(RuntimeError):
    """The process group broke (a peer died or timed out): the run stops; rerunning resumes its checkpoint."""


class WorldError(UserError, ValueError):
    """A world that cannot run this run as launched: a batch that does not split over the ranks, a backend the
    device cannot use, more ranks than GPUs, a malformed torchrun environment. The fix is in how it is launched."""


@dataclass(frozen=True)
class World:
    rank: int = 0                 # global rank of this process
    world_size: int = 1           # processes in the group
    local_rank: int = 0           # rank on this machine: picks the GPU
    local_world_size: int = 1     # processes on this machine: share its cores
    backend: str | None = None    # gloo or nccl; None: no process group (single process)
    device: str = "cpu"           # this rank's device, cuda:LOCAL_RANK on CUDA
    threads: int | None = None    # torch intra-op threads of this rank (None: the process's count), set by the
                                  # caller with vggcore.threads.torch_threads for as long as the run lasts
    owns_group: bool = False      # this `setup` started the group, so `teardown` ends it

    @property
    def distributed(self) -> bool:
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints and results."""
        return self.rank == 0


def env_world() -> dict[str, int] | None:
    """RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE from torchrun's environment, or None outside it."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    values = {}
    for key in ENV_KEYS:
        raw = os.environ.get(key, {"LOCAL_RANK": os.environ["RANK"],
                                   "LOCAL_WORLD_SIZE": os.environ["WORLD_SIZE"]}.get(key, "0"))
        try:
            values[key] = int(raw)
        except ValueError:
            raise WorldError(f"environment variable {key}={raw!r} is not an integer") from None
    return values


def per_rank(batch_size: int, world_size: int, what: str = "batch_size") -> int:
    """Images per rank of a global batch: the batch must split evenly."""
    if batch_size % world_size:
        lower, upper = batch_size // world_size * world_size, -(-batch_size // world_size) * world_size
        raise WorldError(f"{what} {batch_size} is the global batch and must divide by the world size "
                         f"{world_size}; try {lower or world_size} or {upper}")
    return batch_size // world_size


def shard(n: int, world: World) -> slice:
    """This rank's contiguous share of n items for exact evaluation: shares differ by at most one, none is padded,
    together they cover every item once."""
    start = n * world.rank // world.world_size
    stop = n * (world.rank + 1) // world.world_size
    return slice(start, stop)
