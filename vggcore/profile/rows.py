"""A profile as tidy rows: per-round attributed times -> one row per layer, pass and part, with its roofline columns,
plus the unattributed remainder and the totals that say whether the rows add up to the step.

Row order is the order the step runs: zero_grad, the forward pass in model order (each layer's cast row before the
layer), the loss, the backward pass in reverse model order (each layer's cast row after it), the optimizer, then
the unattributed remainder. Times are seconds, FLOPs and bytes per step (the whole batch), rates per second.
Ratios that have no value (a rate of a row that took no time, the intensity of a row that moves nothing) are None.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field, replace
from typing import Iterable, Sequence

from vggcore.errors import UserError
from vggcore.intervals import median_interval, median_rank_interval
from vggcore.profile.events import Key, RoundTimes
from vggcore.profile.roofline import Bound, bound, ratio
from vggcore.profile.roofs import Roofs

TOLERANCE = 0.10        # rows must sum to the unprofiled step within 10%; profiling may slow the step by 10%
UNATTRIBUTED = "unattributed"
CAST = "cast"


class ProfileError(UserError, ValueError):
    """A profile that cannot be taken as asked (mode, model, device, layer filter): says what is allowed."""


@dataclass(frozen=True)
class ProfileRow:
    """One layer's pass (or its casts), or one of the step's other parts."""

    order: int                     # position in the profile, as the step runs
    layer_index: int               # row of vggcore.model.summary (loss: the number of layers; -1: zero_grad, optimizer,
                                   # unattributed)
    layer: str                     # summary's layer (features.0, pool, flatten, classifier.6), loss, zero_grad,
                                   # optimizer or unattributed
    kind: str                      # summary's kind (conv3x3, bn, relu, ...), "cast" for a layer's autocast casts,
                                   # or loss, zero_grad, optimizer, unattributed
    pass_: str                     # forward, backward, update (zero_grad, optimizer) or step (unattributed)
    time_s: float                  # median over the profiled rounds, seconds
    time_low_s: float              # the median's 95% interval (order statistics; min..max below 6 rounds)
    time_high_s: float
    round_times_s: tuple[float, ...]  # this row's seconds in every profiled round, in order
    flops: int                     # analytic FLOPs of this pass (matmul/conv only; vggcore.profile.roofline)
    bytes: int                     # bytes moved under vggcore.profile.roofline's traffic model
    intensity: float | None        # FLOP per byte
    achieved_flops: float | None   # flops / time_s, FLOP/s
    achieved_bytes: float | None   # bytes / time_s, bytes/s
    bound_flops: float             # attainable FLOP/s at this intensity: min(peak, intensity x bandwidth)
    bound_time_s: float            # the least time the roofs allow: max(flops / peak, bytes / bandwidth)
    share_of_bound: float | None   # bound_time_s / time_s (1 = at the roof)
    above_bound_s: float           # time_s - bound_time_s: what this row loses to the roofs, seconds
    limit: str                     # which roof binds at this intensity: compute, memory, none
    dtype: str                     # element type of the row's activations (fp32, bf16, ...; "" where none)
    top_op: str = ""               # the op with the most own time in this row over the rounds (the kernel that
                                   # holds it back: aten::_slow_conv2d_forward, aten::add_, ...); "" where none
    top_op_share: float | None = None   # that op's share of the row's time over the rounds

    def as_dict(self) -> dict:
        d = asdict(self)
        d["pass"] = d.pop("pass_")
        d["round_times_s"] = list(self.round_times_s)
        return d


@dataclass(frozen=True)
class ProfileTotals:
    """The step as a whole: does the table add up, and how much did profiling perturb it."""

    rounds: int                    # profiled rounds (as many unprofiled rounds, interleaved)
    coverage: float                # exact coverage of the intervals at this many rounds (0.969 at 6)
    timing: str                    # "host" (CPU: op durations) or "device" (CUDA: kernel times)
    step_s: float                  # median unprofiled step, seconds (host clock, device synchronised)
    step_low_s: float
    step_high_s: float
    profiled_step_s: float         # median profiled step (the round range), seconds
    profiled_low_s: float
    profiled_high_s: float
    attributed_s: float            # the sum of every row's median but the unattributed one
    unattributed_s: float          # median over rounds of the round minus its attributed rows
    attributed_gap: float          # attributed_s / step_s - 1
    overhead: float                # profiled_step_s / step_s - 1
    reconciles: bool               # |attributed_gap| <= tolerance
    perturbs: bool                 # overhead > tolerance
    tolerance: float
    reasons: tuple[str, ...] = ()  # one plain sentence per failed check

    def as_dict(self) -> dict:
        d = asdict(self)
        d["reasons"] = "; ".join(self.reasons)
        return d


@dataclass(frozen=True)
class OpTime:
    """One op (aten::..., an autograd node's own time) over the whole step: which kernels the time goes to."""

    op: str                        # the profiler's name of the op
    seconds: float                 # own time per step, mean over the profiled rounds (device time on CUDA)
    share: float                   # of the profiled step (mean round)
    rows: int                      # how many of the profile's rows it ran in


@dataclass(frozen=True)
class Profile:
    """One case's profile: its rows, the totals, the roofs, and the setting it ran under."""

    rows: tuple[ProfileRow, ...]
    totals: ProfileTotals
    roofs: Roofs
    setting: dict = field(default_factory=dict)   # arch, mode, batch size, dtype, device, optimizer, versions...
    kernels: tuple[OpTime, ...] = ()              # every op of the attributed rows by own time, most first

    def kernel_records(self, **extra) -> list[dict]:
        """The ops (`kernels`) as tidy records: op, seconds per step, share of the profiled step, rows."""
        return [{**extra, **asdict(k)} for k in self.kernels]

    def records(self, **extra) -> list[dict]:
        """Tidy rows for a JSON file or a DataFrame: `extra` (e.g. case=...) first, then the row's columns."""
        return [{**extra, **row.as_dict()} for row in self.rows]

    def record(self, **extra) -> dict:
        """The case-level record: setting, totals and roofs, flat."""
        return {**extra, **self.setting, **self.totals.as_dict(), **self.roofs.as_dict()}

    def only(self, layers: Sequence[str] | str) -> "Profile":
        """The rows a layer filter picks (see `select`); totals stay those of the whole step."""
        names, kinds = select(layers, [(r.layer, r.kind) for r in self.rows])
        return replace(self, rows=tuple(r for r in self.rows if r.layer in names or r.kind in kinds))


def select(layers: Sequence[str] | str, available: Iterable[tuple[str, str]]) -> tuple[set[str], set[str]]:
    """(layer names, kinds) a filter picks from the (layer, kind) pairs of a profile's rows: each value is a layer
    (features.3: all its rows, casts included) or a kind (conv3x3, relu, cast, loss: the rows of that kind)."""
    available = list(available)
    layer_names = list(dict.fromkeys(layer for layer, _ in available))
    kind_names = list(dict.fromkeys(kind for _, kind in available))
    wanted = [layers] if isinstance(layers, str) else list(layers)
    if not wanted:
        raise ProfileError("layer filter: empty; give layer names or kinds")
    names, kinds = set(), set()
    for value in wanted:
        if value in layer_names:
            names.add(value)
        elif value in kind_names:
            kinds.add(value)
        else:
            raise ProfileError(f"layer filter: {value!r} is no layer or kind of this profile; layers: "
                               f"{', '.join(layer_names)}; kinds: {', '.join(kind_names)}")
    return names, kinds


@dataclass(frozen=True)
class RowPlan:
    """A row the profile will have, with its analytic figures (times come from the rounds)."""

    key: Key                 # (layer, pass, part) as vggcore.profile.events attributes it
    layer_index: int
    kind: str
    flops: int
    bytes: int
    dtype: str


def _stats(values: list[float]) -> tuple[float, float, float]:
    low, high = median_interval(values)
    return statistics.median(values), low, high


def top_op(ops: Sequence[dict[str, float]]) -> tuple[str, float | None]:
    """(name, share) of the op with the most own seconds summed over the rounds' {op: seconds} of one row."""
    totals: dict[str, float] = {}
    for round_ops in ops:
        for name, seconds in round_ops.items():
            totals[name] = totals.get(name, 0.0) + seconds
    total = sum(totals.values())
    if not totals or total <= 0:
        return "", None
    name = max(totals, key=totals.get)
    return name, totals[name] / total


def _row(order: int, plan: RowPlan, times: list[float], roofs: Roofs,
         ops: Sequence[dict[str, float]] = ()) -> ProfileRow:
    median, low, high = _stats(times)
    op, op_share = top_op(ops)
    b: Bound = bound(plan.flops, plan.bytes, roofs.peak_flops, roofs.bandwidth)
    return ProfileRow(
        order=order, layer_index=plan.layer_index, layer=plan.key[0], kind=plan.kind, pass_=plan.key[1],
        time_s=median, time_low_s=low, time_high_s=high, round_times_s=tuple(times), flops=plan.flops,
        bytes=plan.bytes, intensity=b.intensity, achieved_flops=ratio(plan.flops, median),
        achieved_bytes=ratio(plan.bytes, median), bound_flops=b.attainable_flops, bound_time_s=b.time_s,
        share_of_bound=ratio(b.time_s, median) if b.limit != "none" else None,
        above_bound_s=median - b.time_s, limit=b.limit, dtype=plan.dtype, top_op=op, top_op_share=op_share)


def assemble(plans: Sequence[RowPlan], rounds: Sequence[RoundTimes], step_times: Sequence[float], roofs: Roofs,
             timing: str, setting: dict | None = None, tolerance: float = TOLERANCE) -> Profile:
    """Rows from the planned rows and the attributed rounds; any attributed key the plan lacks still gets a row
    (kind "cast" or "other", no FLOPs or bytes), so no measured time is dropped; the remainder is the unattributed
    row."""
    if not rounds or len(rounds) != len(step_times):
        raise ValueError(f"assemble: {len(rounds)} profiled rounds and {len(step_times)} unprofiled ones; "
                         "need the same number, at least one")
    plans = list(plans)
    planned = {p.key for p in plans}
    for key in dict.fromkeys(k for r in rounds for k in r.rows):
        if key not in planned:
            plans.append(RowPlan(key=key, layer_index=-1, kind=CAST if key[2] == "cast" else "other", flops=0,
                                 bytes=0, dtype=""))
    rows = [_row(i, p, [r.rows.get(p.key, 0.0) for r in rounds], roofs, [r.ops.get(p.key, {}) for r in rounds])
            for i, p in enumerate(plans)]
    remainder = [r.duration - r.attributed for r in rounds]
    rows.append(_row(len(rows), RowPlan(key=(UNATTRIBUTED, "step", "op"), layer_index=-1, kind=UNATTRIBUTED,
                                        flops=0, bytes=0, dtype=""), remainder, roofs))
    totals = reconcile([r.duration for r in rounds], list(step_times), sum(r.time_s for r in rows[:-1]),
                       rows[-1].time_s, timing, tolerance)
    return Profile(rows=tuple(rows), totals=totals, roofs=roofs, setting=dict(setting or {}),
                   kernels=kernel_times(rounds))


def kernel_times(rounds: Sequence[RoundTimes]) -> tuple[OpTime, ...]:
    """Each op's own time summed over every attributed row, per step (mean over rounds), most first."""
    seconds: dict[str, float] = {}
    keys: dict[str, set] = {}
    for r in rounds:
        for key, ops in r.ops.items():
            for name, t in ops.items():
                seconds[name] = seconds.get(name, 0.0) + t / len(rounds)
                keys.setdefault(name, set()).add(key)
    step = statistics.fmean(r.duration for r in rounds)
    return tuple(OpTime(op=name, seconds=t, share=t / step if step > 0 else 0.0, rows=len(keys[name]))
                 for name, t in sorted(seconds.items(), key=lambda kv: -kv[1]))


def reconcile(profiled: list[float], step: list[float], attributed: float, unattributed: float, timing: str,
              tolerance: float = TOLERANCE) -> ProfileTotals:
    """The totals and their two checks: rows within `tolerance` of the unprofiled step, profiling overhead at most
    `tolerance`. Each failed check gets one sentence that says what it means."""
    step_s, step_low, step_high = _stats(step)
    prof_s, prof_low, prof_high = _stats(profiled)
    gap = attributed / step_s - 1
    overhead = prof_s / step_s - 1
    reasons = []
    if abs(gap) > tolerance:
        causes = []
        if unattributed > tolerance * prof_s:
            causes.append(f"{unattributed / prof_s:.0%} of the profiled step is in no row (Python between ops, "
                          "the autograd engine between nodes, idle device)")
        if abs(overhead) > tolerance:
            causes.append(f"the profiled step differs from the unprofiled one by {overhead:+.0%}")
        reasons.append(f"the rows sum to {attributed:.4g} s, {gap:+.0%} from the unprofiled step ({step_s:.4g} s; "
                       f"tolerance {tolerance:.0%})" + "".join(f"; {c}" for c in causes))
    if overhead > tolerance:
        reasons.append(f"profiling slows the step by {overhead:.0%} ({prof_s:.4g} s profiled vs {step_s:.4g} s; "
                       f"tolerance {tolerance:.0%}): the shortest rows are inflated most")
    elif overhead < -tolerance:
        reasons.append(f"the profiled step ran {-overhead:.0%} faster than the unprofiled one: the rounds are "
                       "noisy (a loaded machine, too few rounds)")
    return ProfileTotals(
        rounds=len(step), coverage=median_rank_interval(len(step))[2], timing=timing, step_s=step_s,
        step_low_s=step_low, step_high_s=step_high, profiled_step_s=prof_s, profiled_low_s=prof_low,
        profiled_high_s=prof_high, attributed_s=attributed, unattributed_s=unattributed, attributed_gap=gap,
        overhead=overhead, reconciles=abs(gap) <= tolerance, perturbs=overhead > tolerance, tolerance=tolerance,
        reasons=tuple(reasons))
