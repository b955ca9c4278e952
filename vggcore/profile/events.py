"""Profiler events -> seconds per (layer, pass, part) of one profiled step: the attribution rules, as pure functions.

The collector (`vggcore.profile.profiler`) marks the step with named ranges, each a record_function pushed by a module's
forward pre-hook and popped by its forward hook (no backward hooks: they break on in-place ReLU):

    vggcore::round                 the whole step, ending after the device is synchronised
    vggcore::layer/<name>          one leaf module's forward (features.0, pool, classifier.6, ...)
    vggcore::model                 the VGG's own forward; its only op outside its children is torch.flatten
    vggcore::loss, vggcore::backward, vggcore::zero_grad, vggcore::optimizer

Rules:
- forward, loss, zero_grad and optimizer: the ops inside the range, not inside a deeper range of ours.
- backward: each outermost "autograd::engine::evaluate_function: <Node>" event belongs to the range whose forward op
  created that autograd node: the node's sequence number (and forward thread) is the one the profiler recorded on
  the forward op that created it. Several forward ops can carry one sequence number (an op records the number the
  next node will get, even if it creates none), and the node's creator is the last of them to start. AccumulateGrad
  nodes have no sequence number; the engine runs one right after the node that produced its gradient (they have
  the highest priority in its ready queue), so it belongs to the previous backward node on its thread.
- casts: aten::to / aten::_to_copy events at the top of a range or right under an op at its top (autocast casts the
  arguments of conv2d, linear and cross_entropy_loss there, before the op re-dispatches) and the ToCopyBackward0
  nodes form the "cast" part of their range's row; the rest is the "op" part. Deeper casts are an op's own scalar
  conversions (SGD's mul_ by the momentum, dropout's div_) and layout copies (aten::contiguous, a bare aten::copy_)
  are no casts: both stay in the op part.
- time: on the host (CPU), an event's own duration, summed over the outermost events of each range; on a device
  (CUDA), the device time of the kernels each event launched (the profiler correlates kernels to their CPU op),
  summed over every event of the range, so host time never enters a device row.
- everything else in the round (Python between ops, the autograd engine between nodes, the gradient seed, idle
  device time) is the round's remainder, which the caller reports as "unattributed".
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

PREFIX = "vggcore::"
ROUND = PREFIX + "round"
MODEL = PREFIX + "model"
LAYER = PREFIX + "layer/"
BACKWARD = PREFIX + "backward"
NAMED = {PREFIX + "loss": ("loss", "forward"), PREFIX + "zero_grad": ("zero_grad", "update"),
         PREFIX + "optimizer": ("optimizer", "update")}
ROOT_LAYER = "flatten"                       # the row of the VGG's own ops (vggcore.model.summary's "flatten")
EVALUATE = "autograd::engine::evaluate_function: "
CASTS = frozenset({"aten::to", "aten::_to_copy"})
CAST_NODES = frozenset({"ToCopyBackward0"})
ACCUMULATE = "AccumulateGrad"

Key = tuple[str, str, str]                   # (layer, pass, part): part is "op" or "cast"


@dataclass(frozen=True)
class OpEvent:
    """One CPU-side profiler event (an op, a range, an autograd node), in seconds; the tests build these by hand."""

    name: str
    thread: int               # the thread the event ran on
    start: float              # seconds (any common origin)
    end: float
    seq: int = -1             # autograd sequence number (-1: none)
    fwd_thread: int = 0       # for a backward node: the thread of the forward op that created it
    device: float = 0.0       # seconds of device kernels this event itself launched (not its children's)


@dataclass(frozen=True)
class RoundTimes:
    """One profiled step, attributed."""

    duration: float                        # the round range, host seconds
    rows: dict[Key, float] = field(default_factory=dict)   # seconds per (layer, pass, part)
    # per (layer, pass, part): seconds of each op by its own (self) time, so the kernel that holds a row back has
    # a name (aten::_slow_conv2d_forward, aten::add_, aten::_to_copy, ...); the ops of a row sum to its seconds
    ops: dict[Key, dict[str, float]] = field(default_factory=dict)

    @property
    def attributed(self) -> float:
        return sum(self.rows.values())


@dataclass
class _Node:
    event: OpEvent
    children: list["_Node"] = field(default_factory=list)


def _forest(events: Iterable[OpEvent]) -> dict[int, list[_Node]]:
    """Per thread, events nested by their time spans (an event inside another's span is its descendant)."""
    roots: dict[int, list[_Node]] = defaultdict(list)
    by_thread: dict[int, list[OpEvent]] = defaultdict(list)
    for e in events:
        by_thread[e.thread].append(e)
    for thread, evs in by_thread.items():
        stack: list[_Node] = []
        for e in sorted(evs, key=lambda e: (e.start, -e.end)):
            node = _Node(e)
            while stack and stack[-1].event.end < e.end:
                stack.pop()
            (stack[-1].children if stack else roots[thread]).append(node)
            stack.append(node)
    return roots


def ours(name: str) -> bool:
    """Is this event one of the collector's ranges?"""
    return name.startswith(PREFIX)


def range_owner(name: str) -> tuple[str, str] | None:
    """The (layer, pass) whose row one of our ranges feeds; None for the round and backward ranges, whose own ops
    are nobody's (the backward nodes inside find their layer by sequence number)."""
    if name.startswith(LAYER):
        return name[len(LAYER):], "forward"
    if name == MODEL:
        return ROOT_LAYER, "forward"
    return NAMED.get(name)


def _device_total(node: _Node) -> float:
    return node.event.device + sum(_device_total(c) for c in node.children)


def self_times(node: _Node, device_timing: bool, into: dict[str, float] | None = None) -> dict[str, float]:
    """Seconds per op name in `node`'s subtree by each event's own time: on the host its span less its children's
    (a wrapper such as the engine's evaluate_function keeps only the little time outside the ops it holds), on a
    device the kernels each event itself launched. They sum to the subtree's time."""
    into = {} if into is None else into
    e = node.event
    own = e.device if device_timing else (e.end - e.start) - sum(c.event.end - c.event.start for c in node.children)
    if own:
        into[e.name] = into.get(e.name, 0.0) + own
    for c in node.children:
        self_times(c, device_timing, into)
    return into


def _creators(roots: dict[int, list[_Node]]) -> dict[tuple[int, int], tuple[float, tuple[str, str] | None]]:
    """(sequence number, thread) -> (start, owner) of the last-starting forward event carrying that number."""
    found: dict[tuple[int, int], tuple[float, tuple[str, str] | None]] = {}

    def visit(node: _Node, owner: tuple[str, str] | None) -> None:
        e = node.event
        if e.name.startswith(EVALUATE):
            return                            # backward: creates no forward mapping
        if ours(e.name):
            owner = range_owner(e.name)
        elif e.seq >= 0:
            key = (e.seq, e.thread)
            if key not in found or e.start >= found[key][0]:
                found[key] = (e.start, owner)
        for c in node.children:
            visit(c, owner)

    for thread_roots in roots.values():
        for root in thread_roots:
            visit(root, None)
    return found


def attribute(events: Iterable[OpEvent], device_timing: bool) -> RoundTimes:
    """Seconds per (layer, pass, part) of one profiled step from its events (see the module docstring)."""
    events = list(events)
    rounds = [e for e in events if e.name == ROUND]
    if len(rounds) != 1:
        raise ValueError(f"attribute: expected one {ROUND!r} range among the events, found {len(rounds)}")
    rnd = rounds[0]
    inside = [e for e in events if rnd.start <= e.start <= rnd.end]
    roots = _forest(inside)
    creators = _creators(roots)
    rows: dict[Key, float] = defaultdict(float)
    ops: dict[Key, dict[str, float]] = defaultdict(dict)

    def add(owner: tuple[str, str] | None, part: str, seconds: float) -> None:
        if owner is not None and seconds:
            rows[(owner[0], owner[1], part)] += seconds

    def add_ops(owner: tuple[str, str] | None, part: str, times: dict[str, float]) -> None:
        if owner is not None:
            mine = ops[(owner[0], owner[1], part)]
            for name, seconds in times.items():
                mine[name] = mine.get(name, 0.0) + seconds

    def charge(node: _Node, owner: tuple[str, str] | None, cast: bool) -> None:
        """An outermost event of `owner`: its time, with the casts right under it split out (`cast`: it is one)."""
        cast = cast or node.event.name in CASTS
        casts = [] if cast else [c for c in node.children if c.event.name in CASTS]
        mine = self_times(node, device_timing)
        for c in casts:
            split = self_times(c, device_timing)
            add_ops(owner, "cast", split)
            for name, seconds in split.items():
                mine[name] -= seconds
        add_ops(owner, "cast" if cast else "op", {k: v for k, v in mine.items() if v > 1e-12})
        if device_timing:
            add(owner, "cast" if cast else "op", _device_total(node) - sum(_device_total(c) for c in casts))
            add(owner, "cast", sum(_device_total(c) for c in casts))
            return
        split = sum(c.event.end - c.event.start for c in casts)
        add(owner, "cast" if cast else "op", node.event.end - node.event.start - split)
        add(owner, "cast", split)

    last_backward: dict[int, tuple[str, str] | None] = {}

    def visit(node: _Node, owner: tuple[str, str] | None) -> None:
        e = node.event
        if e.name.startswith(EVALUATE):
            node_name = e.name[len(EVALUATE):]
            if ACCUMULATE in node_name:
                fwd = last_backward.get(e.thread)
            else:
                creator = creators.get((e.seq, e.fwd_thread)) if e.seq >= 0 else None
                fwd = creator[1] if creator else None
                last_backward[e.thread] = fwd
            charge(node, (fwd[0], "backward") if fwd else None, node_name in CAST_NODES)
            return
        if not ours(e.name):
            charge(node, owner, False)
            return
        mine = range_owner(e.name)
        if device_timing:
            add(mine, "op", e.device)         # kernels correlated to the range itself (none under an op)
            add_ops(mine, "op", {e.name: e.device} if e.device else {})
        for c in node.children:
            visit(c, mine)

    for thread_roots in roots.values():
        for root in thread_roots:
            visit(root, None)
    return RoundTimes(duration=rnd.end - rnd.start, rows=dict(rows), ops={k: v for k, v in ops.items() if v})
