"""Weak scaling of the data-parallel training step: N ranks spawned here, each with the same per-rank batch.

    pytest bench --benchmark-only --vgg-world-sizes 1,2,4 --vgg-archs A --vgg-batch-sizes 8

Each rank is a process holding a DistributedDataParallel VGG (its gradient bucketing and overlap with the
backward pass as in training) and its own seeded batch; the benchmark's timed call tells every rank to take one
SGD step and returns when all have finished. On CPU the ranks use gloo and split the cores between them; on CUDA
nccl with one GPU per rank. A world size the machine cannot host is skipped with the reason.
"""

from __future__ import annotations

import socket
import traceback
from dataclasses import asdict, dataclass

import torch

from vggcore.device import DTYPES, device_available, dtype_unsupported_reason
from vggcore.threads import cpu_count

from .cases import OptionError, positive_ints, split

DEFAULT_PER_RANK_BATCH = {"cpu": 8, "cuda": 64}
READY_TIMEOUT_S = 600.0    # building and warming up a rank; a rank silent longer than this failed
STEP_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class ScalingCase:
    arch: str               # paper configuration, "_bn" suffix for BatchNorm
    batch_size: int         # images per rank per step (weak scaling: fixed as the world grows)
    image_size: int         # square input side, pixels
    width: float            # channel/FC width multiplier
    device: str             # cpu (gloo) or cuda (nccl)
    dtype: str              # fp32, or bf16/fp16 under autocast
    world_size: int         # ranks
    head: str = "paper"
    mode: str = "ddp_train_step"

    @property
    def id(self) -> str:
        return "-".join([self.arch, self.mode, self.device, self.dtype, f"{self.image_size}px", f"w{self.width:g}",
                         f"b{self.batch_size}", f"n{self.world_size}"])

    @property
    def group(self) -> str:
        return " ".join([self.arch, self.mode, self.device, self.dtype, f"{self.image_size}px",
                         f"width {self.width:g}", f"per-rank batch {self.batch_size}"])

    @property
    def baseline_key(self) -> tuple:
        """The same case at world size 1, whose throughput the efficiency divides by."""
        return (self.arch, self.batch_size, self.image_size, self.width, self.device, self.dtype, self.head)

    def skip_reason(self) -> str | None:
        reason = dtype_unsupported_reason(self.device, self.dtype)
        if reason:
            return reason
        have, unit = capacity(self.device)
        if self.world_size > have:
            return (f"world size {self.world_size} needs {self.world_size} {unit} (one per rank); this machine "
                    f"has {have}")
        return None


def capacity(device: str) -> tuple[int, str]:
    """How many ranks this machine hosts on `device`: one per core on CPU, one per GPU on CUDA."""
    if device == "cuda":
        return (torch.cuda.device_count() if torch.cuda.is_available() else 0), "GPUs"
    return cpu_count(), "CPU cores"


def world_sizes(raw: str | None) -> list[int] | None:
    values = split("--vgg-world-sizes", raw)
    return sorted(set(positive_ints("--vgg-world-sizes", values))) if values is not None else None


def expand_scaling(options: dict[str, str | None], sizes: list[int]) -> list[ScalingCase]:
    """Scaling cases from the suite's options: archs (default A), per-rank batch sizes, devices (cpu, cuda),
    dtypes (fp32), image size and width as for the single-process grid."""
    from .cases import canonical_arch, choose

    archs = [canonical_arch("--vgg-archs", a) for a in split("--vgg-archs", options.get("archs")) or ["A"]]
    devices = split("--vgg-devices", options.get("devices")) or [d for d in ("cpu", "cuda") if device_available(d)]
    choose("--vgg-devices", devices, ("cpu", "cuda"))
    for d in devices:
        if not device_available(d):
            raise OptionError(f"--vgg-devices: {d!r} is not available on this machine")
    dtypes = choose("--vgg-dtypes", split("--vgg-dtypes", options.get("dtypes")) or ["fp32"], tuple(DTYPES))
    raw_batches = split("--vgg-batch-sizes", options.get("batch_sizes"))
    image_size = positive_ints("--vgg-image-size", [options.get("image_size") or "224"])[0]
    try:
        width = float(options.get("width") or "1")
    except ValueError:
        raise OptionError(f"--vgg-width: {options.get('width')!r} is not a number") from None
    head = options.get("head") or "paper"
    cases = []
    for device in devices:
        batches = positive_ints("--vgg-batch-sizes", raw_batches) if raw_batches else [DEFAULT_PER_RANK_BATCH[device]]
        for arch in archs:
            for dtype in dtypes:
                for b in batches:
                    for n in sizes:
                        cases.append(ScalingCase(arch, b, image_size, width, device, dtype, n, head))
    return cases


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Group:
    """`world_size` rank processes, each with a DDP model and its batch, stepping when told to."""

    def __init__(self, case: ScalingCase) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.case, port = case, free_port()
        self.conns, self.procs = [], []
        for rank in range(case.world_size):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=_rank_main, args=(asdict(case), rank, port, theirs), daemon=True)
            proc.start()
            self.conns.append(mine)
            self.procs.append(proc)
        self.info = [self._receive(c, READY_TIMEOUT_S) for c in self.conns]

    def _receive(self, conn, timeout: float):
        if not conn.poll(timeout):
            self.close()
            raise RuntimeError(f"a rank of the {self.case.world_size}-rank group did not answer in {timeout:.0f} s")
        kind, payload = conn.recv()
        if kind == "error":
            self.close()
            raise RuntimeError(f"a rank failed: {payload}")
        return payload

    def __call__(self) -> None:
        for c in self.conns:
            c.send("step")
        for c in self.conns:
            self._receive(c, STEP_TIMEOUT_S)

    def close(self) -> None:
        for c in self.conns:
            try:
                c.send("stop")
            except (BrokenPipeError, OSError):
                pass
        for p in self.procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()


def _rank_main(case_dict: dict, rank: int, port: int, conn) -> None:
    """One rank: join the group as training does (`vggcore.train.distributed.setup`), build the DDP model, warm up, then
    take training's own step (`vggcore.train.step.train_step`) on request."""
    try:
        from vggcore import VGGConfig, build
        from vggcore.train.distributed import setup, teardown, wrap_model
        from vggcore.device import synchronize
        from vggcore.train.sgd import sgd
        from vggcore.train.step import train_step
        from vggcore.config import TrainConfig
        from vggcore.threads import torch_threads

        case = ScalingCase(**case_dict)
        # On CPU the ranks split the cores between them, as training's ranks on one machine do.
        world = setup(case.device, rank=rank, world_size=case.world_size, address=f"127.0.0.1:{port}")
        with torch_threads(world.threads):   # this rank's share of the cores, as training's ranks
            torch.manual_seed(0)
            model = build(VGGConfig(arch=case.arch, image_size=case.image_size, width=case.width, num_classes=1000,
                                    head=case.head)).to(world.device)
            ddp = wrap_model(model, world, sync_bn=False)
            optimizer = sgd(model.parameters(), TrainConfig())
            gen = torch.Generator().manual_seed(rank)
            x = torch.randn(case.batch_size, 3, case.image_size, case.image_size, generator=gen).to(world.device)
            y = torch.randint(0, 1000, (case.batch_size,), generator=gen).to(world.device)

            def step() -> None:
                train_step(ddp, optimizer, [(x, y)], world_size=world.world_size, dtype=case.dtype)
                synchronize(world.device)

            for _ in range(2):  # allocate gradients, optimizer state and DDP's buckets
                step()
            conn.send(("ready", {"threads": torch.get_num_threads(), "backend": world.backend}))
            while True:
                message = conn.recv()
                if message != "step":
                    break
                step()
                conn.send(("done", None))
        teardown(world)
    except Exception as err:  # the parent turns it into the case's failure
        try:
            conn.send(("error", f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=4)}"))
        except (BrokenPipeError, OSError):
            pass
