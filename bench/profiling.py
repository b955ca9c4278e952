"""--vgg-profile: every benchmarked case also gets its per-layer profile (`vggcore.profile.profiler.profile_step`), recorded
in the case's extra_info beside its timing, so one JSON file holds both and `reports` draws the roofline from it.

    pytest bench --benchmark-only --vgg-profile --vgg-archs A --vgg-batch-sizes 8 --vgg-modes train_step \
        --vgg-dtypes fp32,bf16 --vgg-channels-last off,on --benchmark-json profile.json
    pytest bench --benchmark-only --vgg-profile-layers conv3x3,optimizer ...   # keep only these rows

What a case records (extra_info["profile"], format PROFILE_FORMAT):

    format    1
    case      the case's id (as in the test name test_vgg[<id>])
    totals    `Profile.record()`: the setting (arch, mode, dtype, optimizer, threads, versions, ...), the totals
              (step_s, attributed_s, unattributed_s, attributed_gap, overhead, reconciles, perturbs, reasons), the
              roofs (peak_flops, bandwidth and how each was measured) and benchmark_median_s, the case's own
              benchmark median (the profile's unprofiled rounds are timed separately, after the benchmark's)
    rows      `Profile.records(case=id)`: one tidy row per layer, pass and part (vggcore.profile.rows.ProfileRow)
    kernels   `Profile.kernel_records()`: every op by its own time per step, most first (op, seconds, share, rows)

The profile runs after the case's timed rounds and memory probe, on the same model, inputs and optimizer. The
roofs are measured once per device and dtype in the session: the peak is the session's own (`peak_flops`
fixture), the bandwidth a STREAM triad (`vggcore.profile.roofs`). A case that cannot be profiled per layer (torchvision's
model, a torch.compile'd one, a layer filter that names nothing in it) keeps its benchmark and records
`profile_skipped` with the reason, which the terminal summary lists.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import pytest

from vggcore.config import VGGConfig
from vggcore.errors import UsageError
from vggcore.intervals import MIN_ROUNDS_95
from vggcore.profile.profiler import profile_step, unprofilable_reason
from vggcore.profile.rows import ProfileError
from vggcore.profile.roofs import Roofs, measure_roofs
from vggcore.model.summary import summary

from . import session
from .cases import BenchCase, OptionError, split

PROFILE_FORMAT = 1
# Rows every profile of a mode may have besides the model's layers: the step's own parts.
PARTS = {"forward": ("unattributed",), "forward_backward": ("zero_grad", "loss", "unattributed"),
         "train_step": ("zero_grad", "loss", "optimizer", "unattributed")}


@dataclass(frozen=True)
class ProfileOptions:
    """--vgg-profile and its companions, parsed."""

    enabled: bool                          # profile every case of the single-process grid
    layers: tuple[str, ...] | None = None  # keep only these rows (layer names or kinds); None: every row
    rounds: int = MIN_ROUNDS_95            # profiled rounds, each with one unprofiled round interleaved
    warmup: int = 1                        # untimed pairs first (the profiler's first session costs most)


def add_options(group) -> None:
    group.addoption("--vgg-profile", action="store_true",
                    help="also profile every case per layer and pass (forward, backward, optimizer, casts) against "
                         "the roofs measured in this run; rows go into the case's extra_info (default off)")
    group.addoption("--vgg-profile-layers", default=None, metavar="LAYER|KIND,...",
                    help="with --vgg-profile (implies it): keep only these rows, e.g. conv3x3,optimizer or "
                         "features.0 (the totals still cover the whole step); default every row")
    group.addoption("--vgg-profile-rounds", default=None, metavar="N",
                    help=f"with --vgg-profile (implies it): profiled rounds per case, each beside one unprofiled "
                         f"round (default {MIN_ROUNDS_95}, the fewest whose min..max is a 95%% interval of the "
                         "median)")


def options_from(config: pytest.Config, cases: list[BenchCase]) -> ProfileOptions:
    """The parsed options; OptionError/UsageError (a pytest usage error) for a bad value or a clash."""
    layers_raw, rounds_raw = config.getoption("--vgg-profile-layers"), config.getoption("--vgg-profile-rounds")
    enabled = bool(config.getoption("--vgg-profile")) or layers_raw is not None or rounds_raw is not None
    if not enabled:
        return ProfileOptions(enabled=False)
    if config.getoption("benchmark_disable", False):
        raise UsageError("--vgg-profile needs timed rounds; it cannot run with --benchmark-disable (drop one)")
    if config.getoption("--vgg-world-sizes") is not None:
        raise UsageError("--vgg-profile profiles the single-process grid; the data-parallel scaling benchmark "
                         "(--vgg-world-sizes) has no per-layer profile (drop one)")
    rounds = MIN_ROUNDS_95
    if rounds_raw is not None:
        if not rounds_raw.strip().isdigit() or int(rounds_raw) < 1:
            raise OptionError(f"--vgg-profile-rounds: {rounds_raw!r} is not a positive integer")
        rounds = int(rounds_raw)
    layers = None
    if layers_raw is not None:
        layers = tuple(split("--vgg-profile-layers", layers_raw))
        check_filter(layers, cases)
    return ProfileOptions(enabled=True, layers=layers, rounds=rounds)


def available_rows(cases: list[BenchCase]) -> tuple[list[str], list[str]]:
    """(layer names, kinds) the profiles of `cases` can have, from vggcore.model.summary's tables (no model is built)."""
    layers, kinds = {}, {}
    for case in cases:
        if case.implementation != "vggcore":
            continue
        table = summary(VGGConfig(arch=case.arch, image_size=case.image_size, width=case.width, head=case.head))
        layers.update(dict.fromkeys(table["layer"]))
        kinds.update(dict.fromkeys(table["kind"]))
        parts = PARTS.get(case.mode, ())
        layers.update(dict.fromkeys(parts))
        kinds.update(dict.fromkeys(parts))
        if case.dtype != "fp32":
            kinds["cast"] = None
    return list(layers), list(kinds)


def check_filter(layers: tuple[str, ...], cases: list[BenchCase]) -> None:
    """Every filter value must name a layer or kind of some case's profile; one that fits only some cases leaves
    the others unprofiled, each with the reason (`profile_case`)."""
    names, kinds = available_rows(cases)
    unknown = [v for v in layers if v not in names and v not in kinds]
    if unknown:
        raise OptionError(f"--vgg-profile-layers: {unknown[0]!r} is no layer or kind of any profiled case; layers: "
                          f"{', '.join(names) or 'none (no vggcore case)'}; kinds: {', '.join(kinds) or 'none'}")


def roofs(config: pytest.Config, device: str, dtype: str, peaks: dict[str, float]) -> Roofs:
    """The roofs of (device, dtype), measured once per session: the session's peak and a STREAM triad."""
    cache = config.stash.setdefault(session.ROOFS, {})
    if (device, dtype) not in cache:
        cache[(device, dtype)] = measure_roofs(device, dtype, peaks=peaks)
    return cache[(device, dtype)]


def skip_reason(case: BenchCase, runner) -> str | None:
    """Why this case gets no profile (its benchmark still counts), or None."""
    return unprofilable_reason(runner, case.mode, case.device, case.dtype)


def profile_case(config: pytest.Config, case: BenchCase, step, peaks: dict[str, float], info: dict) -> dict:
    """The extra_info fields of this case's profile: {"profile": {...}}, or {"profile_skipped": reason}.
    `step` is the case's `bench.runner.Step` (model, inputs, optimizer), `info` the figures measured so far."""
    options: ProfileOptions = config.stash[session.PROFILE]
    reason = skip_reason(case, step.runner)
    if reason is None:
        try:
            prof = profile_step(step.model, case.mode, batch_size=case.batch_size, device=case.device,
                                dtype=case.dtype, channels_last=case.channels_last, optimizer=step.optimizer,
                                rounds=options.rounds, warmup=options.warmup, layers=options.layers,
                                roofs=roofs(config, case.device, case.dtype, peaks), inputs=(step.x, step.y))
        except ProfileError as err:   # a filter value this case's model lacks: the others may have it
            reason = str(err)
    if reason is not None:
        config.stash.setdefault(session.UNPROFILED, []).append((case.id, reason))
        return {"profile_skipped": reason}
    times = info.get("round_times") or []
    totals = prof.record(case=case.id, benchmark_median_s=statistics.median(times) if times else None)
    return {"profile": {"format": PROFILE_FORMAT, "case": case.id, "totals": totals,
                        "rows": prof.records(case=case.id), "kernels": prof.kernel_records()}}


def terminal_summary(terminalreporter, config: pytest.Config) -> None:
    """List the cases that asked for a profile and got none, with the reason."""
    missing = config.stash.get(session.UNPROFILED, [])
    session.report_cases(terminalreporter, "benchmark cases without a profile", missing,
                         f"{len(missing)} case(s) benchmarked without a per-layer profile.")
