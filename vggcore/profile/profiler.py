"""Where the time of one step goes: a per-layer forward, backward and optimizer profile against a measured roofline.

    >>> from vggcore import build
    >>> from vggcore.profile.profiler import profile_step
    >>> model = build("A", width=0.25, image_size=32)
    >>> prof = profile_step(model, "train_step", batch_size=8, dtype="bf16", channels_last=True, rounds=6)
    >>> prof.records(case="A-train_step-...")       # tidy rows: layer, pass, time_s, flops, bytes, share_of_bound...
    >>> prof.totals.reconciles, prof.totals.overhead, prof.totals.reasons

How: the step runs as the benchmark runs it (zero_grad, autocast forward, cross-entropy, backward, SGD step, device
synchronised), round after round. Each round times one plain step on the host clock and one step under
torch.profiler with a range per module (forward pre/post hooks) and per part of the step, in alternating order so
drift hits both alike. `vggcore.profile.events` attributes the profiled step's ops, backward nodes and casts to
rows (on CUDA by the device time of their kernels); `vggcore.profile.plan` gives each row its analytic FLOPs and
bytes (`vggcore.profile.roofline`); `vggcore.profile.rows` adds the roofs (`vggcore.profile.roofs`, measured here unless given),
the medians and intervals (`vggcore.intervals`), and says whether the rows add up to the plain step.

On a CUDA device with an index (cuda:1) the step runs there; the roofs are measured on the current device.
"""

from __future__ import annotations

from vggcore.profile import MODES

import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Iterator, Sequence

import torch
from torch import nn

from vggcore.device import (
    DTYPES,
    autocast,
    device_name,
    device_unavailable_reason,
    dtype_unsupported_reason,
    synchronize,
)
from vggcore.threads import threads
from vggcore.model.network import VGG
from vggcore.profile.events import PREFIX, OpEvent, RoundTimes, attribute
from vggcore.profile.plan import Seen, plan_rows
from vggcore.profile.rows import Profile, ProfileError, assemble, select
from vggcore.provenance import git_commit
from vggcore.profile.roofs import Roofs, measure_roofs
from vggcore.train.sgd import SGD_IMPLEMENTATIONS, default_sgd, sgd_implementation

# The paper's SGD (section 3.1), as the benchmark steps it, in vggcore's default implementation for the device
# (vggcore.train.sgd.DEFAULT_SGD) unless the caller passes its own optimizer.
SGD = dict(lr=1e-2, momentum=0.9, weight_decay=5e-4)

Mark = Callable[[str], ContextManager]


def no_mark(name: str) -> ContextManager:
    return nullcontext()


# ------------------------------------------------------------------------------------------------ what can run
def unprofilable_reason(model: nn.Module, mode: str, device: str, dtype: str = "fp32") -> str | None:
    """Why this case cannot be profiled per layer, or None when it can (phase 2's skip reasons come from here)."""
    if mode not in MODES:
        return f"mode {mode!r} cannot be profiled; modes: {', '.join(MODES)}"
    if hasattr(model, "_orig_mod"):
        return ("a torch.compile'd model runs its layers as fused graphs, so no op belongs to one layer; "
                "profile the eager model")
    if not isinstance(model, VGG):
        return (f"per-layer profiles need a vggcore VGG (FLOPs and bytes come from vggcore.model.summary), "
                f"got {type(model).__module__}.{type(model).__name__}")
    if device.startswith("mps"):
        return "torch.profiler has no MPS device times; host times of asynchronous MPS work would misattribute"
    return device_unavailable_reason(device) or dtype_unsupported_reason(device.partition(":")[0], dtype)


def check(model: nn.Module, mode: str, device: str, dtype: str) -> None:
    if dtype not in DTYPES:
        raise ProfileError(f"dtype {dtype!r} is unknown; dtypes: {', '.join(DTYPES)}")
    reason = unprofilable_reason(model, mode, device, dtype)
    if reason:
        raise ProfileError(reason)


def check_layers(model: VGG, mode: str, device: str, dtype: str, batch_size: int,
                 optimizer: torch.optim.Optimizer | None, layers: Sequence[str]) -> None:
    """ProfileError unless every value of the layer filter names a row (layer or kind) this profile will have."""
    select(layers, [(p.key[0], p.kind) for p in plan_rows(model, mode, device, dtype, batch_size, Seen(), optimizer,
                                                           set())] + [("unattributed", "unattributed")])


# ------------------------------------------------------------------------------------------------ the step
def sync(device: str) -> None:
    """Wait for `device` (cuda:1 included: vggcore.device.synchronize knows the default device only)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(torch.device(device))
    else:
        synchronize(device)


class CaseStep:
    """One step of a case as the benchmark times it; `mark(name)` brackets its parts when it is profiled."""

    def __init__(self, model: nn.Module, mode: str, device: str, dtype: str, x: torch.Tensor, y: torch.Tensor,
                 optimizer: torch.optim.Optimizer | None) -> None:
        self.model, self.mode, self.device, self.dtype = model, mode, device, dtype
        self.kind = device.partition(":")[0]   # autocast's device_type
        self.x, self.y, self.optimizer = x, y, optimizer
        model.train(mode != "forward")

    def __call__(self, mark: Mark = no_mark) -> None:
        if self.mode == "forward":
            with torch.inference_mode(), autocast(self.kind, self.dtype):
                self.model(self.x)
        else:
            with mark("zero_grad"):
                self.model.zero_grad(set_to_none=True)
            with autocast(self.kind, self.dtype):
                logits = self.model(self.x)
                with mark("loss"):
                    loss = nn.functional.cross_entropy(logits, self.y)
            with mark("backward"):
                loss.backward()
            if self.optimizer is not None:
                with mark("optimizer"):
                    self.optimizer.step()
        sync(self.device)  # the step ends when the device is done


def layer_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if name and not any(True for _ in m.children())]


def install(model: nn.Module, mark: Mark, seen: Seen) -> list:
    """A range per leaf module ("layer/<name>") and one for the model ("model"), pushed by forward pre-hooks and
    popped by forward hooks; returns the hook handles (remove them after the profiled step)."""
    stack: list[ContextManager] = []

    def hooks(name: str, label: str):
        def pre(module, args):
            cm = mark(label)
            cm.__enter__()
            stack.append(cm)
            if args and isinstance(args[0], torch.Tensor):
                seen.inputs[name] = (args[0].numel(), args[0].dtype)

        def post(module, args, output):
            if isinstance(output, torch.Tensor):
                seen.outputs[name] = (output.numel(), output.dtype)
            stack.pop().__exit__(None, None, None)
        return pre, post

    handles = []
    for name, module, label in [*((n, m, "layer/" + n) for n, m in layer_modules(model)), ("", model, "model")]:
        pre, post = hooks(name, label)
        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    return handles


# ------------------------------------------------------------------------------------------------ event sources
@dataclass
class Session:
    """One profiled step: `mark` opens a named range; `events` is filled when the session ends."""

    mark: Mark
    events: list[OpEvent] = field(default_factory=list)


def record(name: str) -> ContextManager:
    return torch.profiler.record_function(PREFIX + name)


def op_events(function_events) -> list[OpEvent]:
    """torch.profiler's events -> OpEvents: CPU-side events only, each with the device time of the kernels (and
    copies, memsets) correlated to it. Device spans of user annotations (record_function ranges, ours and torch's
    own, e.g. Optimizer.step) are not kernels and are left out, so no device time is counted twice."""
    from torch.autograd import DeviceType

    cpu = [e for e in function_events if e.device_type == DeviceType.CPU and not e.is_async]
    annotations = {e.name for e in cpu if e.is_user_annotation} | {PREFIX}
    return [OpEvent(name=e.name, thread=e.thread, start=e.time_range.start * 1e-6, end=e.time_range.end * 1e-6,
                    seq=e.sequence_nr, fwd_thread=e.fwd_thread or 0,
                    device=sum(k.duration for k in e.kernels
                               if k.name not in annotations and not k.name.startswith(PREFIX)) * 1e-6)
            for e in cpu]


class TorchProfilerSource:
    """Profiles each step with torch.profiler: host op times on CPU, kernel times on CUDA."""

    def __init__(self, device: str) -> None:
        self.device_timing = device.startswith("cuda")

    @contextmanager
    def session(self) -> Iterator[Session]:
        from torch.profiler import ProfilerActivity, profile

        from vggcore.profile.noise import native_stderr_filtered

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.device_timing else [])
        session = Session(mark=record)
        with native_stderr_filtered():   # Kineto's USDT lines and failed GPU probe; anything else is shown
            with profile(activities=activities) as prof:
                yield session
            session.events = op_events(prof.events())


def optimizer_name(optimizer: torch.optim.Optimizer | None) -> str:
    """SGD(for-loop), SGD(foreach), SGD(fused), SGD(auto) (PyTorch's choice), or the class of another optimizer."""
    if optimizer is None:
        return ""
    if isinstance(optimizer, torch.optim.SGD):
        return f"SGD({sgd_implementation(optimizer)})"
    return type(optimizer).__name__


# ------------------------------------------------------------------------------------------------ the profile
def time_step(step: Callable[[], None], clock: Callable[[], float]) -> float:
    """One plain step on `clock` (read exactly once before and once after)."""
    start = clock()
    step()
    return clock() - start


def profile_step(model: VGG, mode: str = "train_step", *, batch_size: int, device: str = "cpu",
                 dtype: str = "fp32", channels_last: bool = False,
                 optimizer: torch.optim.Optimizer | None = None, rounds: int = 6, warmup: int = 1,
                 layers: Sequence[str] | None = None, roofs: Roofs | None = None,
                 inputs: tuple[torch.Tensor, torch.Tensor] | None = None, seed: int = 0, source=None,
                 clock: Callable[[], float] = time.perf_counter,
                 on_stage: Callable[[str], None] = lambda stage: None) -> Profile:
    """Profile `rounds` steps of `model` in `mode` (forward, forward_backward, train_step); see the module docstring.

    optimizer: the one train_step steps (default: the paper's SGD in vggcore.train.step's default implementation for the
    device); layers: keep
    only these rows (layer names or kinds; the whole step is profiled and the totals cover it); roofs: measured
    here when not given; inputs: (x, y), else seeded like the benchmark's; source: the event source
    (TorchProfilerSource; tests inject a stub); clock: the plain steps' clock; on_stage: called after each warm-up
    pair ("warm-up"), each round ("round"), and before and after the roofs ("roofs", "roofs measured"): a progress
    bar's steps (`warmup + rounds + 1` of them, the roofs' start not counted).
    """
    check(model, mode, device, dtype)
    if rounds < 1 or warmup < 0:
        raise ProfileError(f"rounds must be at least 1 and warmup at least 0, got rounds={rounds}, warmup={warmup}")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device=device, memory_format=fmt)
    if inputs is None:
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(batch_size, *model.input_shape, generator=gen)
        y = torch.randint(0, model.config.num_classes, (batch_size,), generator=gen)
        inputs = (x.to(device, memory_format=fmt), y.to(device))
    if mode == "train_step" and optimizer is None:
        optimizer = torch.optim.SGD(model.parameters(), **SGD, **SGD_IMPLEMENTATIONS[default_sgd(device)])
    step = CaseStep(model, mode, device, dtype, *inputs, optimizer if mode == "train_step" else None)
    if layers is not None:   # judge the filter before the work: the row names do not depend on the run
        check_layers(model, mode, device, dtype, batch_size, step.optimizer, layers)
    source = source or TorchProfilerSource(device)
    seen = Seen()

    def profiled() -> RoundTimes:
        with source.session() as session:
            handles = install(model, session.mark, seen)
            try:
                with session.mark("round"):
                    step(session.mark)
            finally:
                for h in handles:
                    h.remove()
        return attribute(session.events, source.device_timing)

    for _ in range(warmup):   # kernel selection, allocator, first touch; the profiler's first session
        step()
        profiled()
        on_stage("warm-up")
    plain, measured = [], []
    for r in range(rounds):
        for which in ((0, 1) if r % 2 == 0 else (1, 0)):
            if which == 0:
                plain.append(time_step(step, clock))
            else:
                measured.append(profiled())
        on_stage("round")
    cast_keys = {(k[0], k[1]) for m in measured for k in m.rows if k[2] == "cast"}
    plans = plan_rows(model, mode, device, dtype, batch_size, seen, step.optimizer, cast_keys)
    on_stage("roofs")
    roofs = roofs or measure_roofs(device.partition(":")[0], dtype)
    on_stage("roofs measured")
    setting = dict(arch=model.config.name, width=model.config.width, image_size=model.config.image_size,
                   head=model.config.head, batch_size=batch_size, mode=mode, device=device,
                   device_name=device_name(device.partition(":")[0]), dtype=dtype, channels_last=channels_last,
                   optimizer=optimizer_name(step.optimizer), warmup=warmup, threads=threads(),
                   torch_version=torch.__version__, git_commit=git_commit())
    prof = assemble(plans, measured, plain, roofs, "device" if source.device_timing else "host", setting)
    return prof.only(layers) if layers is not None else prof
