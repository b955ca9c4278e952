"""The one reader of run records: the typed records `Store.read` returns, as the tidy tables every reader uses,
the report (`reports.load`), the looks of `run --until-decided` (`ablations.adaptive`), `status` and `list`
(`ablations.cli`) and the demo.

    runs_table(records)      one row per run (columns below)
    history_table(records)   one row per run and epoch: study, run_id, variant, seed, epoch and the epoch's figures
    rule_inputs(record)      the inputs of the rule for seeds that did not train (ablations.stats.failures)
    protocol_columns(record) the test protocol a record's test metrics come from

Columns of `runs_table`, one row per run:
    study, run_id, variant, seed, status, error, diverged_epoch, epochs, seconds, threads, executor, git_commit,
    torch, file (the results file, when given); level.<factor> for each factor; the final METRICS
    (vggcore.results: test_top1_error, ...; NaN where a run has none); RULE_COLUMNS (first_train_loss,
    final_train_loss, rule_error, num_classes); PROTOCOL_COLUMNS (train_id, eval.source, eval.protocol,
    eval.scales, eval.flip, eval.crops, eval.views, eval.train_scale).
"""

from __future__ import annotations

from typing import Iterable

from vggcore.results import METRICS

from .records import RunRecord
from .stats.failures import RULE_COLUMNS, record_inputs

RUN_COLUMNS = ("study", "run_id", "variant", "seed", "status", "error", "diverged_epoch", "epochs", "seconds",
               "threads", "executor", "git_commit", "torch")
PROTOCOL_COLUMNS = ("train_id", "eval.source", "eval.protocol", "eval.scales", "eval.flip", "eval.crops",
                    "eval.views", "eval.train_scale")


def rule_inputs(record: RunRecord) -> dict:
    """The inputs of the rule from one run record, as the columns RULE_COLUMNS: the first and last epoch's training
    loss (NaN for fewer than 2 epochs), the final test top-1 error (the rule's criterion (b) reads it whatever
    metric the study ranks by) and the number of classes (the record's resolved model.num_classes, which training
    sets from the dataset; NaN when absent)."""
    first, final, err = record_inputs(record.history, record.final, "test_top1_error")
    classes = record.num_classes
    return {"first_train_loss": first, "final_train_loss": final, "rule_error": err,
            "num_classes": float(classes) if classes is not None and classes >= 2 else float("nan")}


def protocol_columns(record: RunRecord) -> dict:
    """The test protocol a record's test metrics come from, as PROTOCOL_COLUMNS: train_id (the run_id for a record
    without one), eval.source ("protocol" for a record scored under its eval section, "training" for the
    training's own centre crop at Q = S_min), eval.protocol, eval.scales ("32,37,42"), eval.flip, eval.crops,
    eval.views, eval.train_scale (the training's S, or S_min-S_max when jittered). None where it cannot be told."""
    from vggcore.config import RunConfig
    from vggcore.evaluate.protocols import own_protocol, resolve

    out = dict.fromkeys(PROTOCOL_COLUMNS)
    out["train_id"] = record.train_id or record.run_id
    entry = record.evaluation if isinstance(record.evaluation, dict) else None
    scored = "eval" in record.config
    try:
        run = RunConfig.from_json(record.config)
        s_min, s_max = run.data.scales(run.model.image_size)
        out["eval.train_scale"] = str(s_min) if s_min == s_max else f"{s_min}-{s_max}"
        if entry is None:  # the protocol asked for (a run that did not finish), else the training's own
            entry = (resolve(run.eval, run.model.image_size, run.model.pool_size, s_min, s_max) if run.eval
                     else own_protocol(run.model.image_size, s_min)).to_json()
    except (KeyError, TypeError, ValueError):  # a config this code cannot read: no protocol to name
        if entry is None:
            return out
    out.update({"eval.source": "protocol" if scored else "training", "eval.protocol": entry.get("protocol"),
                "eval.scales": ",".join(map(str, entry.get("scales") or [])), "eval.flip": entry.get("flip"),
                "eval.crops": entry.get("crops"), "eval.views": entry.get("views")})
    return out


def run_row(record: RunRecord) -> dict:
    """One row of `runs_table`."""
    provenance = record.provenance or {}
    row = {"study": record.study, "run_id": record.run_id, "variant": record.variant, "seed": record.seed,
           "status": record.status, "error": record.error, "diverged_epoch": record.diverged_epoch,
           "epochs": len(record.history), "seconds": record.seconds, "threads": record.threads,
           "executor": record.executor, "git_commit": provenance.get("git_commit"),
           "torch": (provenance.get("versions") or {}).get("torch")}
    row.update({f"level.{k}": v for k, v in (record.levels or {}).items()})
    row.update(protocol_columns(record))
    row.update({m: record.metric(m) for m in METRICS})
    row.update(rule_inputs(record))
    return row


def runs_table(records: Iterable[RunRecord], file: str | None = None):
    """One row per run (the module's columns); an empty table still has every fixed column."""
    import pandas as pd

    rows = [{**run_row(r), **({"file": file} if file is not None else {})} for r in records]
    fixed = [*RUN_COLUMNS, *PROTOCOL_COLUMNS, *METRICS, *RULE_COLUMNS, *(["file"] if file is not None else [])]
    frame = pd.DataFrame(rows)
    for column in fixed:
        if column not in frame:
            frame[column] = pd.Series(dtype=object)
    return frame


def history_table(records: Iterable[RunRecord]):
    """One row per run and epoch: study, run_id, variant, seed and the epoch's row as training recorded it."""
    import pandas as pd

    return pd.DataFrame([{"study": r.study, "run_id": r.run_id, "variant": r.variant, "seed": r.seed, **h}
                         for r in records for h in r.history])
