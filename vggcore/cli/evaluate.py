"""`python -m vggcore evaluate`: score a run folder's checkpoint under one of the paper's test protocols.

    python -m vggcore evaluate runs/a --protocol dense                     # Table 3: one scale, Q = S, + mirror
    python -m vggcore evaluate runs/a --protocol centre --scales multi     # Table 4: Q = {S - 32, S, S + 32}, scaled
    python -m vggcore evaluate runs/a --protocol multicrop                 # Table 5: 5 x 5 crops x 2 flips x 3 Q
    python -m vggcore evaluate runs/a --protocol dense --scales 32,64 --flip
    python -m vggcore train ... --out runs/a --eval dense --eval centre:multi --eval multicrop:37:noflip:crops=3

The result is printed and added to the run's metrics.json under "evaluations" (the training's own results stay as
they are); the same evaluation again replaces its entry. What each protocol and default means:
`vggcore.evaluate.protocols`.

`--eval SPEC` of `train` (repeatable) takes a protocol the same way in one word: PROTOCOL[:SCALES][:flip|:noflip]
[:crops=G], SCALES being single, multi or pixels separated by commas.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vggcore.errors import UsageError
from vggcore.lock import folder_lock
from vggcore.evaluate.protocols import PROTOCOLS, SCALE_SETS, Protocol, ProtocolError
from vggcore.validation import integer, option_value

SPEC_FORM = "PROTOCOL[:SCALES][:flip|:noflip][:crops=G], e.g. dense:multi or multicrop:37,42:noflip:crops=3"


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (the --out of `python -m vggcore train`)")
    p.add_argument("--protocol", default="centre", help=", ".join(PROTOCOLS))
    p.add_argument("--scales", help="single (Table 3's Q), multi (Table 4's three Q) or test scales in pixels "
                   "separated by commas (default: multi for the multicrop protocols, else single)")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="also run each view mirrored (default: on for dense and the multicrop protocols, as in the "
                   "paper's section 3.2; off for centre)")
    p.add_argument("--crops", metavar="G", help="multicrop: a G x G grid of crops per scale (default: the paper's 5)")
    p.add_argument("--device", help="where to run (default: the run's own device)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def scales_value(option: str, text: str | None):
    """single, multi or a tuple of pixel scales from the option's text; UsageError for anything else."""
    if text is None or text in SCALE_SETS:
        return text
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"{option} {text!r}: give {' or '.join(SCALE_SETS)}, or test scales in pixels separated "
                         "by commas (e.g. 32,37,42)") from None


def protocol(name: str, scales: str | None, flip: bool | None, crops: str | None, where: str = "") -> Protocol:
    """A Protocol from option text; a refused value is one line naming what was typed and what is allowed."""
    count = option_value(f"{where}--crops", crops, integer(1, hint=" (the side of the G x G grid of crops per "
                                                                   "scale)"), integer=True)
    scales = scales_value(f"{where}--scales", scales)
    try:
        Protocol.CHECKS["scales"]("--scales", scales)   # under the option's name
        return Protocol(name, scales, flip, count)
    except ProtocolError as err:
        raise ProtocolError(f"{where}{err}", err.fields, err.value, err.allowed) from None


def parse_eval_spec(text: str) -> Protocol:
    """`train --eval SPEC`: PROTOCOL[:SCALES][:flip|:noflip][:crops=G]."""
    name, *parts = text.split(":")
    scales = flip = crops = None
    for part in parts:
        if part in ("flip", "noflip") and flip is None:
            flip = part == "flip"
        elif part.startswith("crops=") and crops is None:
            crops = part[len("crops="):]
        elif scales is None and part and (part in SCALE_SETS or part[0].isdigit()):
            scales = part
        else:
            raise UsageError(f"--eval {text}: cannot read {part!r}; give {SPEC_FORM}")
    return protocol(name, scales, flip, crops, where=f"--eval {text}: ")


def run_evaluate(args: argparse.Namespace) -> int:
    from vggcore.evaluate.runs import check_run_folder, evaluate_run, open_run, record_evaluations

    asked = protocol(args.protocol, args.scales, args.flip, args.crops)
    folder = Path(args.run_dir)
    check_run_folder(folder)   # before the lock, which would create a folder that is not there
    # Held while reading, scoring and writing: a training that resumes in this folder meanwhile is refused.
    with folder_lock(folder, what="run folder"):
        run = open_run(folder, args.device)
        entry = evaluate_run(run, [asked], progress=not args.quiet)[0]
        outcome = record_evaluations(folder, [entry])[0]
    print(describe(entry, folder))
    if run.status not in ("ok", None):
        print(f"note: the run's status is {run.status}: this scored its checkpoint after epoch "
              f"{entry['checkpoint_epoch']}")
    print(f"{'added to' if outcome == 'added' else 'replaced its entry in'} {folder / 'metrics.json'} "
          "(evaluations)")
    return 0


def describe(entry: dict, folder: Path) -> str:
    crops = f", {entry['crops']}x{entry['crops']} crops" if entry.get("crops") else ""
    views = f"{entry['views']} view{'s' if entry['views'] != 1 else ''} per image"
    return (f"{folder}: {entry['protocol']} at Q = {', '.join(map(str, entry['scales']))}{crops}"
            f"{', flipped too' if entry['flip'] else ''} ({views}, {entry['images']} test images): top-1 error "
            f"{entry['top1_error']:.4f} (accuracy {1 - entry['top1_error']:.2%}), top-5 error "
            f"{entry['top5_error']:.4f}")


def evaluate_after_training(out: Path, protocols: list[Protocol], status: str) -> list[str]:
    """`train --eval`: score the finished run's checkpoint under each protocol, record the entries, and return the
    lines to print."""
    from vggcore.evaluate.runs import evaluate_run, record_evaluations

    if status != "ok":
        return [f"--eval: nothing scored, the run {status}"]
    entries = evaluate_run(out, protocols)
    record_evaluations(out, entries)
    return [describe(entry, out) for entry in entries]


def check_protocols(protocols: list[Protocol], model, data) -> None:
    """Refuse, before any training, a protocol the net to be trained could not take (its scales)."""
    from vggcore.evaluate.protocols import resolve

    s_min, s_max = data.scales(model.image_size)
    for p in protocols:
        resolve(p, model.image_size, model.pool_size, s_min, s_max)
