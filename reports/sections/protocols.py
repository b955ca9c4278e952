"""Test-protocol section: per study whose runs were scored under eval sections, every protocol's errors over seeds,
the paper's Table 3/4/5 layouts for the runs that have them, and each protocol against its reference paired by seed
(the same weights: `ablations.paired`)."""

from __future__ import annotations

import pandas as pd

from ablations.paired import TEST, paired_effects
from ablations.stats import summarize

from ..document import Report
from ..format import DASH
from . import Inputs

METHOD_NAMES = {"centre": "centre crop", "dense": "dense", "multicrop": "multi-crop",
                "dense+multicrop": "multi-crop & dense"}
PAPER = {  # the paper's figures beside each layout (ImageNet val, top-1 / top-5 error %, net D)
    "table3": "paper, net D: 27.0/8.8 (S = 256, Q = 256), 26.8/8.7 (S = 384, Q = 384), 25.6/8.1 (S in [256; 512], "
              "Q = 384)",
    "table4": "paper, nets D and E trained with S in [256; 512], Q = {256, 384, 512}: 24.8/7.5",
    "table5": "paper, net D: dense 24.8/7.5, multi-crop 24.6/7.5, multi-crop & dense 24.4/7.2 (three scales)",
}
METRICS = ("test_top1_error", "test_top5_error")
# The columns shown (reports.readable.HEADERS names each one in words; the CSVs keep every machine column)
SHOWN = ["variant", "source", "protocol", "train_scale", "scales", "flip", "crops", "views", "n_ok", "top1_error",
         "top5_error"]
PAIRED_SHOWN = ["variant", "reference", "n_pairs", "mean", "reference_mean", "paired_diff", "diff_low", "diff_high",
                "p_value", "p_adjusted", "decision"]


def add(r: Report, inp: Inputs) -> None:
    abl = inp.ablations
    if abl is None or abl.runs.empty or "eval.source" not in abl.runs:
        return
    scored = abl.runs[abl.runs["eval.source"] == "protocol"]["study"].unique()
    if not len(scored):
        return
    r.add("h2", "Test protocols")
    r.add("text", "Each variant's test errors under the protocol it was scored with (vggcore.evaluate.protocols; docs/"
                  "evaluation.md): test scales Q and training scale S in pixels, views per image = forward passes "
                  "per test image; scored by 'training' is the training's own centre crop at Q = S, 'protocol' an "
                  "eval section. Errors: the mean over seeds [its 95% Student-t interval], in percent. Runs that "
                  "differ only in their protocol score the same trained weights, so they are compared paired by "
                  "seed below.")
    for _, s in abl.studies[abl.studies["study"].isin(scored)].iterrows():
        runs = abl.runs[abl.runs["study"] == s["study"]]
        study = s["study"]
        r.add("h3", f"Protocols of study {study}")
        table = protocol_table(runs)
        r.table(f"protocols_{study}", table, display=_display(table))
        for key, title, rows in layouts(table):
            if not rows.empty:
                r.table(f"protocols_{key}_{study}", rows, f"{title} ({PAPER[key]})", display=_display(rows))
        me = s.get("min_effect")
        me = None if me is None or me != me else float(me)
        paired = paired_effects(runs, s["metric"], bool(s["maximize"]), alpha=float(s.get("alpha", 0.05)),
                                min_effect=me)
        if not paired.empty:
            r.table(f"protocols_paired_{study}", paired.drop(columns=["study"]),
                    f"{s['metric']}: each protocol against its reference, paired by seed",
                    display=paired_display(paired))
            # in the words of the table's headers (reports.readable.HEADERS), not the CSV's column names
            r.add("text", f"Difference vs reference = the protocol's {s['metric']} minus its reference's (the same "
                          f"weights scored at the protocol factor's baseline level), per seed, averaged over the "
                          f"seeds paired (both runs finished, at most {int(paired['n_pairs'].max())}); its "
                          f"{(1 - float(s.get('alpha', 0.05))) * 100:.4g}% interval and p by {TEST}; adjusted p by "
                          f"Holm over the study's {len(paired)} protocol comparison(s). The effects table of the "
                          "ablation section compares the same runs unpaired (Welch), which ignores the shared weights "
                          "and is wider; read this one for protocols.")


def protocol_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per variant: its protocol and its errors over seeds (mean, interval)."""
    cols = ["variant", "eval.source", "eval.protocol", "eval.train_scale", "eval.scales", "eval.flip", "eval.crops",
            "eval.views"]
    first = runs.drop_duplicates("variant").set_index("variant")[cols[1:]]
    out = first.rename(columns=lambda c: c.removeprefix("eval.")).reset_index()
    for metric in METRICS:
        stats = summarize(runs, metric).set_index("variant")
        short = metric.removeprefix("test_")
        out[f"{short}"] = out["variant"].map(stats["mean"])
        out[f"{short}_low"] = out["variant"].map(stats["ci_low"])
        out[f"{short}_high"] = out["variant"].map(stats["ci_high"])
    out["n_ok"] = out["variant"].map(summarize(runs, METRICS[0]).set_index("variant")["n_ok"])
    return out


def layouts(table: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """The rows of the paper's three testing tables: one scale (Table 3), several scales with one view per scale
    (Table 4), dense against multi-crop and both (Table 5)."""
    ok = table[table["protocol"].notna()]
    count = ok["scales"].fillna("").str.count(",") + 1
    single = ok[(count == 1) & ok["protocol"].isin(["centre", "dense"])]
    multi = ok[(count > 1) & ok["protocol"].isin(["centre", "dense"])]
    versus = ok[ok["protocol"].isin(["dense", "multicrop", "dense+multicrop"])].copy()
    versus["protocol"] = versus["protocol"].map(METHOD_NAMES)
    return [("table3", "Table 3 layout: a single test scale", single),
            ("table4", "Table 4 layout: several test scales", multi),
            ("table5", "Table 5 layout: dense against multi-crop evaluation", versus)]


def _interval(mean, low, high) -> str:
    if mean != mean:
        return DASH
    if low != low or high != high:
        return f"{100 * mean:.2f}%"
    return f"{100 * mean:.2f}% [{100 * low:.2f}, {100 * high:.2f}]"


def _display(table: pd.DataFrame) -> pd.DataFrame:
    """The protocol table as shown: crops as G x G, each error as "mean% [low, high]" (SHOWN's columns)."""
    out = table[SHOWN].copy()
    out["crops"] = [DASH if c is None or c != c else f"{int(c)}x{int(c)}" for c in table["crops"]]
    for short in ("top1_error", "top5_error"):
        out[short] = [_interval(m, lo, hi) for m, lo, hi in
                      zip(table[short], table[f"{short}_low"], table[f"{short}_high"])]
    return out


def paired_display(paired: pd.DataFrame) -> pd.DataFrame:
    """The paired comparison as shown: its difference is against the reference, not the study's baseline."""
    return paired.rename(columns={"diff": "paired_diff"})[PAIRED_SHOWN]
