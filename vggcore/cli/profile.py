"""`python -m vggcore profile`: where the time of one step goes, layer by layer and pass by pass, against the
roofline measured in the same run (`vggcore.profile.profiler`).

    python -m vggcore profile A --batch-size 8                              # fp32 training step, 224 px
    python -m vggcore profile D --batch-size 8 --dtype bf16 --channels-last
    python -m vggcore profile A --mode forward --layers conv3x3 --format csv
    python -m vggcore profile A --image-size 32 --width 0.25 --optimizer fused --format json > a.json

The table has one row per layer and pass (forward, backward), the autocast casts a layer causes (kind "cast"),
the loss, zero_grad, the optimizer step and the unattributed remainder; below it the totals (do the rows add up
to the unprofiled step, how much profiling perturbs it) and the roofs. --format csv and json give every column
of `vggcore.profile.rows.ProfileRow` in SI units (seconds, FLOPs, bytes); json adds the case record and every op
by its own time per step (which kernels the time goes to).
"""

from __future__ import annotations

import argparse
import json
import sys

from vggcore.errors import UsageError
from vggcore.device import DTYPE_NAMES
from vggcore.profile import MODES
from vggcore.train.sgd import DEFAULT_SGD, SGD_CHOICES
from vggcore.validation import integer, number, option_value

FORMATS = ("table", "csv", "markdown", "json")
KERNELS_SHOWN = 6   # ops listed under the table


def add_profile_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("arch", help="A, A-LRN, B, C, D, E or vgg11/13/16/19[_bn]")
    p.add_argument("--batch-norm", action="store_true", help="BatchNorm after every conv")
    p.add_argument("--batch-size", default="8", help="images per step")
    p.add_argument("--image-size", default="224", help="square input side, pixels")
    p.add_argument("--width", default="1", help="channel and FC-width multiplier (1 = the paper)")
    p.add_argument("--head", default="paper", help="paper, torchvision or gap")
    p.add_argument("--num-classes", default="1000", help="outputs of the last layer")
    p.add_argument("--mode", default="train_step", help=", ".join(MODES))
    p.add_argument("--dtype", default="fp32", help="fp32, or bf16/fp16 under autocast")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format for the model and its input")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (mps has no device times to profile)")
    p.add_argument("--optimizer", default=None,
                   help=f"train_step's SGD implementation: {', '.join(SGD_CHOICES)} (default: the device's, "
                        f"vggcore.train.sgd.DEFAULT_SGD: {', '.join(f'{d} {v}' for d, v in DEFAULT_SGD.items())})")
    p.add_argument("--rounds", default="6", help="profiled rounds, each beside one unprofiled round (6: the "
                                                 "fewest whose min..max is a 95%% interval of the median)")
    p.add_argument("--warmup", default="1", help="untimed pairs of steps first")
    p.add_argument("--layers", default=None, metavar="LAYER|KIND,...",
                   help="keep only these rows, e.g. conv3x3,optimizer or features.0 (the totals still cover the "
                        "whole step); default every row")
    p.add_argument("--threads", default=None, help="torch intra-op threads (default: torch's own choice)")
    p.add_argument("--seed", default="0", help="seeds the weights and the input batch")
    p.add_argument("--format", default="table", help=", ".join(FORMATS))
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _choice(option: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise UsageError(f"{option}: unknown value {value!r}; allowed: {', '.join(allowed)}")
    return value


def run_from_args(args: argparse.Namespace) -> int:
    import torch

    from vggcore.config import VGGConfig
    from vggcore.model.network import build
    from vggcore.profile.profiler import check, check_layers, profile_step
    from vggcore.profile.roofs import check_settings
    from vggcore.train.sgd import default_sgd, sgd
    from vggcore.config import TrainConfig
    from vggcore.threads import torch_threads

    fmt = _choice("--format", args.format, FORMATS)
    mode = _choice("--mode", args.mode, MODES)
    dtype = _choice("--dtype", args.dtype, DTYPE_NAMES)
    batch_size = option_value("--batch-size", args.batch_size, integer(1), integer=True)
    image_size = option_value("--image-size", args.image_size, integer(32), integer=True)
    width = option_value("--width", args.width, number(0, low_open=True))
    num_classes = option_value("--num-classes", args.num_classes, integer(1), integer=True)
    rounds = option_value("--rounds", args.rounds, integer(1), integer=True)
    warmup = option_value("--warmup", args.warmup, integer(0), integer=True)
    seed = option_value("--seed", args.seed, integer(0), integer=True)
    threads = option_value("--threads", args.threads, integer(1), integer=True)
    layers = None
    if args.layers is not None:
        layers = [v.strip() for v in args.layers.split(",") if v.strip()]
        if not layers:
            raise UsageError("--layers: empty; give layer names or kinds, e.g. conv3x3,optimizer")
    if args.optimizer is not None:
        _choice("--optimizer", args.optimizer, SGD_CHOICES)
        if mode != "train_step":
            raise UsageError(f"--optimizer applies to --mode train_step only, not {mode}")
    check_settings()   # the roofs are measured last: their environment settings are judged before any round
    config = VGGConfig(arch=args.arch, batch_norm=args.batch_norm, image_size=image_size, width=width,
                       head=args.head, num_classes=num_classes)
    with torch_threads(threads):   # --threads for the profile, this process's count after it
        torch.manual_seed(seed)
        model = build(config)
        check(model, mode, args.device, dtype)      # before anything moves to a device that may not exist
        model = model.to(args.device)
        optimizer = None
        if mode == "train_step":
            implementation = args.optimizer or default_sgd(args.device)
            optimizer = sgd(model.parameters(), TrainConfig(), implementation=implementation)   # the paper's SGD
        if layers is not None:
            check_layers(model, mode, args.device, dtype, batch_size, optimizer, layers)
        print(f"profiling {config.name} {mode} at batch {batch_size}, {dtype}"
              f"{' channels_last' if args.channels_last else ''} on {args.device}: {warmup} warm-up and {rounds} "
              "profiled rounds, then the roofs", file=sys.stderr)
        bar = None if args.quiet else _Bar(f"profile {config.name}", warmup + rounds + 1)
        try:
            prof = profile_step(model, mode, batch_size=batch_size, device=args.device, dtype=dtype,
                                channels_last=args.channels_last, optimizer=optimizer, rounds=rounds, warmup=warmup,
                                layers=layers, seed=seed,   # the roofs are measured in the same run
                                on_stage=bar.stage if bar is not None else lambda stage: None)
        finally:
            if bar is not None:
                bar.close()
    print(render(prof, fmt))
    return 0


class _Bar:
    """The profile's bar on stderr: one step per warm-up pair, per round, and the roofs; the stage beside it."""

    def __init__(self, name: str, total: int) -> None:
        from tqdm.auto import tqdm

        self.tqdm, self.rounds = tqdm(total=total, desc=name, unit="step", leave=False), 0

    def stage(self, stage: str) -> None:
        if stage == "roofs":   # the roofs' measurement starts: say so while it runs
            self.tqdm.set_postfix(stage="roofs")
            return
        self.rounds += stage == "round"
        self.tqdm.set_postfix({"stage": stage, **({"rounds": self.rounds} if self.rounds else {})}, refresh=False)
        self.tqdm.update(1)

    def close(self) -> None:
        self.tqdm.refresh()   # the last state shown, whatever tqdm's rate limit skipped
        self.tqdm.close()


def _sig(value, digits: int = 3) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:.{digits}g}"


def display_rows(prof) -> list[dict]:
    """The rows in units people read: ms, GFLOP/s, GB/s (1e9 bytes), percentages."""
    out = []
    for r in prof.rows:
        out.append({
            "layer": r.layer, "kind": r.kind, "pass": r.pass_, "time_ms": _sig(r.time_s * 1e3),
            "interval_ms": f"{_sig(r.time_low_s * 1e3)}-{_sig(r.time_high_s * 1e3)}",
            "MFLOP": _sig(r.flops / 1e6) if r.flops else "-", "MB": _sig(r.bytes / 1e6) if r.bytes else "-",
            "FLOP/B": _sig(r.intensity), "GFLOP/s": _sig(r.achieved_flops / 1e9) if r.flops and r.achieved_flops
            else "-", "GB/s": _sig(r.achieved_bytes / 1e9) if r.bytes and r.achieved_bytes else "-",
            "bound_ms": _sig(r.bound_time_s * 1e3) if r.limit != "none" else "-",
            "of_bound": f"{r.share_of_bound:.1%}" if r.share_of_bound is not None else "-",
            "above_bound_ms": _sig(r.above_bound_s * 1e3), "limit": r.limit,
            "top_op": f"{r.top_op} ({r.top_op_share:.0%})" if r.top_op else "-"})
    return out


def totals_text(prof) -> str:
    t, roofs = prof.totals, prof.roofs
    lines = [f"step (unprofiled, median of {t.rounds}): {t.step_s * 1e3:.4g} ms "
             f"[{t.step_low_s * 1e3:.4g}, {t.step_high_s * 1e3:.4g}]; profiled: {t.profiled_step_s * 1e3:.4g} ms",
             f"rows: {t.attributed_s * 1e3:.4g} ms ({t.attributed_gap:+.1%} from the step), unattributed "
             f"{t.unattributed_s * 1e3:.4g} ms; profiling overhead {t.overhead:+.1%} (tolerance {t.tolerance:.0%});"
             f" timing: {t.timing}",
             f"roofs: {roofs.peak_flops / 1e9:.4g} GFLOP/s {roofs.dtype} peak, {roofs.bandwidth / 1e9:.4g} GB/s "
             f"(STREAM triad) on {roofs.device}; optimizer: {prof.setting.get('optimizer') or 'none'}; "
             f"threads: {prof.setting.get('threads')}"]
    lines += [f"note: {reason}" for reason in t.reasons]
    top = prof.kernels[:KERNELS_SHOWN]
    if top:
        lines.append("ops with the most own time per step: " + "; ".join(
            f"{k.op} {k.seconds * 1e3:.4g} ms ({k.share:.0%}, {k.rows} rows)" for k in top))
    return "\n".join(lines)


def render(prof, fmt: str) -> str:
    import pandas as pd

    if fmt == "json":
        return json.dumps({"case": prof.record(), "rows": prof.records(), "kernels": prof.kernel_records()},
                          indent=1, default=str)
    if fmt == "csv":
        return pd.DataFrame(prof.records()).to_csv(index=False).rstrip("\n")
    table = pd.DataFrame(display_rows(prof))
    body = table.to_markdown(index=False) if fmt == "markdown" else table.to_string(index=False)
    return f"{body}\n\n{totals_text(prof)}"
