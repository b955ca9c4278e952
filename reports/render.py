"""`reports build`: tables, figures, report.md and a self-contained index.html (images beside it).

The report is a list of blocks (heading, text, table, figure) rendered twice, to Markdown and to HTML, so the
two never drift apart. Every table is also written as CSV, every figure as PNG.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import matplotlib.pyplot as plt
import pandas as pd

from ablations.stats import effects, power

from . import plots
from .bench_tables import cases_display, fastest_display, fastest_with_speedup, paper_table2, speed_ratios
from .history import history, latest_runs, machines, steps
from .load import ReportInputError, load_ablations, load_bench


@dataclass
class Block:
    kind: str            # "h1", "h2", "h3", "text", "table", "figure"
    content: object      # str, DataFrame, or figure file name
    caption: str = ""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


MAX_STEM = 80   # file names stay well under every file system's 255-byte limit


class Report:
    def __init__(self, out: Path) -> None:
        self.out, self.blocks = out, []
        self.stems: dict[str, str] = {}   # name given by the caller (may hold a study name) -> safe file stem

    def add(self, kind: str, content, caption: str = "") -> None:
        self.blocks.append(Block(kind, content, caption))

    def file_stem(self, name: str) -> str:
        """A file-name-safe, unique stem for `name`: lower-case [a-z0-9_], so a study called "sub/dir" or
        "x' onerror='..." cannot leave figures/ or tables/; a stem already taken, shortened or emptied by the
        slugging gets a short hash of the full name."""
        if name not in self.stems:
            stem = _slug(name)[:MAX_STEM]
            if not stem or stem in self.stems.values() or stem != _slug(name):
                stem = f"{stem[:MAX_STEM - 9]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}".lstrip("_")
            self.stems[name] = stem
        return self.stems[name]

    def table(self, name: str, frame: pd.DataFrame, caption: str = "", display: pd.DataFrame | None = None) -> None:
        """CSV of `frame` (numbers, for tools); `display` (readable text) is shown instead when given."""
        frame.to_csv(self.out / "tables" / f"{self.file_stem(name)}.csv", index=False)
        self.add("table", frame if display is None else display, caption or name.replace("_", " "))

    def figure(self, name: str, draw) -> None:
        ax = draw(None)
        stem = self.file_stem(name)
        ax.figure.savefig(self.out / "figures" / f"{stem}.png", dpi=110)
        plt.close(ax.figure)
        self.add("figure", f"figures/{stem}.png", name.replace("_", " "))

    def markdown(self) -> str:
        parts = []
        for b in self.blocks:
            if b.kind in ("h1", "h2", "h3"):
                parts.append("#" * int(b.kind[1]) + " " + b.content)
            elif b.kind == "text":
                parts.append(b.content)
            elif b.kind == "table":
                parts.append(f"*{b.caption}*")
                parts.append(_round(b.content).to_markdown(index=False))
            else:
                parts.append(f"![{_md_text(b.caption)}]({quote(b.content)})")
        return "\n\n".join(parts) + "\n"

    def html(self, title: str) -> str:
        body = []
        for b in self.blocks:
            if b.kind in ("h1", "h2", "h3"):
                body.append(f'<{b.kind} id="{_attr(_slug(b.content))}">{html.escape(b.content)}</{b.kind}>')
            elif b.kind == "text":
                body.append(f"<p>{html.escape(b.content)}</p>")
            elif b.kind == "table":
                body.append(f"<p class='cap'>{html.escape(b.caption)}</p>")
                body.append(_round(b.content).to_html(index=False, border=0, classes="t", na_rep="—", escape=True))
            else:
                body.append(f'<figure><img src="{_attr(quote(b.content))}" alt="{_attr(b.caption)}">'
                            f"<figcaption>{html.escape(b.caption)}</figcaption></figure>")
        style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
                 "table.t{border-collapse:collapse;font-size:13px;margin:1em 0}"
                 "table.t td,table.t th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}"
                 "img{max-width:100%}figcaption,p.cap{color:#666;font-size:12px;margin-bottom:0}")
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def _attr(text: str) -> str:
    """Text safe inside a double- or single-quoted HTML attribute."""
    return html.escape(str(text), quote=True)


def _md_text(text: str) -> str:
    """Text safe inside Markdown's image brackets."""
    return re.sub(r"([\\\[\]])", r"\\\1", text)


def _round(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col in out.select_dtypes("float").columns:
        out[col] = out[col].map(lambda v: float(f"{v:.4g}") if pd.notna(v) else v)
    return out


def _prepare(out: Path) -> None:
    try:
        for sub in ("figures", "tables"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise ReportInputError(f"cannot write the report to {out}: {err.strerror or err}") from None


EFFECTS_COLUMNS = ["study", "variant", "n", "n_ok", "mean", "ci_low", "ci_high", "diff", "diff_low", "diff_high",
                   "rel_diff", "p_value", "p_adjusted", "decision", "min_effect", "alpha", "test", "correction",
                   "family", "metric"]


def build(bench_paths=(), ablation_paths=(), out: str | Path = "report", method: str = "t",
          min_effect: float | None = None, correction: str = "holm") -> Path:
    """Write the report into `out`; returns the path of index.html. `min_effect` overrides each study's own."""
    if not bench_paths and not ablation_paths:
        raise ReportInputError("nothing to report: give --bench FILE_OR_DIR and/or --ablations DIR")
    out = Path(out)
    bench = load_bench(bench_paths) if bench_paths else None
    scaling = None
    if bench is not None and bench["world_size"].notna().any():
        # The data-parallel scaling cases are their own section; the rest is the single-process grid.
        scaling = bench[bench["world_size"].notna()]
        bench = bench[bench["world_size"].isna()]
        bench = None if bench.empty else bench
    bench_all = bench
    bench, machine = latest_runs(bench_all) if bench_all is not None else (None, None)
    abl = load_ablations(ablation_paths) if ablation_paths else None
    _prepare(out)
    r = Report(out)
    r.add("h1", "vggbench report")
    r.add("text", f"Built {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from "
                  f"{len(bench_paths)} benchmark input(s) and {len(ablation_paths)} ablation input(s).")

    r.add("h2", "Summary")
    ablation_effects, powers = {}, {}
    if abl is not None and not abl.runs.empty:
        for _, s in abl.studies.iterrows():
            runs = abl.runs[abl.runs["study"] == s["study"]]
            me = min_effect if min_effect is not None else s.get("min_effect")
            me = None if me is None or me != me else float(me)
            ablation_effects[s["study"]] = effects(runs, s["metric"], bool(s["maximize"]), method, min_effect=me,
                                                   alpha=float(s.get("alpha", 0.05)), correction=correction)
            powers[s["study"]] = power(runs, s["metric"], me)
        pd.concat(ablation_effects.values())[EFFECTS_COLUMNS].to_csv(out / "tables" / "effects.csv", index=False)
    if bench is not None:
        r.add("h3", "Fastest setting per architecture")
        fastest = fastest_with_speedup(bench)
        r.table("fastest_settings", fastest, display=fastest_display(fastest))
        r.add("text", "Speed-up: median step time of plain fp32 (same device, batch size and implementation) over "
                      "the fastest setting's, with a 95% interval from both cases' rounds and the between-run "
                      "noise model of `reports compare`.")
    if ablation_effects:
        r.add("h3", "Effects, ranked (best first)")
        for study, eff in ablation_effects.items():
            cols = ["variant", "n_ok", "n", "mean", "ci_low", "ci_high", "diff", "diff_low", "diff_high", "rel_diff",
                    "p_value", "p_adjusted", "decision"]
            r.table(f"summary_{study}", eff[cols], study)
            r.add("text", _method_text(eff, powers[study].iloc[0]))
    r.add("h3", "Paper Table 2 beside vggcore")
    r.table("paper_table2", paper_table2())
    missing = [name for name, data in (("benchmark", bench if scaling is None else scaling), ("ablation", abl))
               if data is None]
    if missing:
        r.add("text", f"Not in this report: {' and '.join(missing)} results (none were given).")

    if bench is not None:
        _bench_section(r, bench)
        _history_section(r, bench_all, machine)
    if scaling is not None:
        _scaling_section(r, scaling)
    if abl is not None:
        _ablation_section(r, abl, ablation_effects)
    (out / "report.md").write_text(r.markdown())
    index = out / "index.html"
    index.write_text(r.html("vggbench report"))
    return index


def _method_text(eff: pd.DataFrame, pw: pd.Series) -> str:
    """What the numbers of one study mean, in words: method, family, threshold, seeds needed."""
    row = eff.iloc[0]
    level = f"{(1 - row['alpha']) * 100:.4g}%"
    looks = "" if row["alpha"] >= 0.05 else (f" Seeds were added --until-decided: every interval and test is at "
                                             f"alpha {row['alpha']:.4g}, 0.05 split over the planned looks.")
    me = row["min_effect"]
    threshold = (f"equivalent: the interval lies inside +/-{me:g}" if me == me
                 else "no min_effect set, so no variant can be called equivalent")
    need = (f" Seeds per variant to detect a difference of {me:g} with 80% power (pooled sd {pw['pooled_sd']:.3g}): "
            f"{pw['seeds_needed']:.0f}, now {pw['seeds_now']}." if pw["seeds_needed"] == pw["seeds_needed"] else "")
    return (f"{row['study']}: {row['metric']}; n_ok of n runs finished. {row['ci_method']}; diff = variant - "
            f"baseline with its {level} interval, rel_diff = diff / |baseline mean|, p_value {row['test']} "
            f"(two-sided), p_adjusted by {row['correction']} over the family of {row['family']}. Decisions: "
            f"better/worse when p_adjusted < {row['alpha']:.4g} and the interval lies beyond 0; {threshold}; "
            f"undecided otherwise.{looks}{need}")


def _bench_section(r: Report, bench: pd.DataFrame) -> None:
    r.add("h2", "Benchmarks")
    r.add("text", "Throughput from the median step time; MFU against the peak measured in the same run; "
                  "memory is the step's measured peak.")
    cols = [c for c in ["arch", "mode", "device", "dtype", "implementation", "batch_size", "images_per_s",
                        "median", "rounds", "mfu", "peak_memory_bytes", "activation_bytes", "threads"] if c in bench]
    r.table("benchmarks", bench.sort_values(["arch", "mode", "batch_size"])[cols], display=cases_display(bench))
    shaky = bench[bench["unstable"]]
    if not shaky.empty:
        r.add("text", f"{len(shaky)} unstable case(s), marked 'no' above and ringed in red in the figures: their "
                      "rounds were too spread, fell into two clusters, or the median's interval missed its target. "
                      "Rerun them with more --vgg-max-time, fewer threads or on an idle machine before trusting "
                      "them.")
    for mode in bench["mode"].dropna().unique():
        r.figure(f"throughput_{mode}", lambda ax, m=mode: plots.throughput_vs_batch(bench, ax, mode=m))
    r.figure("memory", lambda ax: plots.memory_vs_batch(bench, ax))
    r.figure("mfu", lambda ax: plots.mfu(bench, ax))
    ratios = speed_ratios(bench)
    if ratios.empty:
        r.add("text", "No torchvision reference cases (run the suite with --vgg-reference for the comparison).")
    else:
        r.table("speed_ratios", ratios.drop(columns="case"))
        r.figure("vggcore_vs_torchvision", lambda ax: plots.speed_ratio(ratios, ax))


def _history_section(r: Report, bench_all: pd.DataFrame, machine: str) -> None:
    """Saved runs over time, per machine; only when some case was run more than once."""
    found_machines = machines(bench_all)
    hist = history(bench_all)
    if hist.groupby(["machine", "name"]).size().max() < 2 and len(found_machines) < 2:
        return
    r.add("h2", "History")
    listing = "; ".join(f"{m}: {n} run(s)" for m, n in zip(found_machines["machine"], found_machines["runs"]))
    if len(found_machines) > 1:
        r.add("text", f"Benchmark files from {len(found_machines)} machines, never mixed: {listing}. The tables "
                      f"above show the latest runs of {machine}; each machine's history is shown on its own.")
    else:
        r.add("text", f"Runs of {listing}, in time order.")
    found = steps(hist)
    if found.empty:
        r.add("text", "No step: no case changed beyond the 5% threshold and the noise between its runs.")
    else:
        from .format import ratio_interval_h

        shown = found.assign(change=[ratio_interval_h(a, b, c) for a, b, c in
                                     zip(found["ratio"], found["low"], found["high"])])
        r.table("history_steps", found, "steps detected (after / before, median step time)",
                display=shown[["machine", "name", "verdict", "change", "step_at_run", "datetime", "commit"]])
    for m, g in hist.groupby("machine", sort=True):
        if g.groupby("name").size().max() >= 2:
            r.figure(f"history_{_slug(m)}", lambda ax, g=g, m=m: plots.history(g, found[found["machine"] == m], ax))


def _scaling_section(r: Report, scaling: pd.DataFrame) -> None:
    r.add("h2", "Data-parallel scaling")
    r.add("text", "Weak scaling: the per-rank batch is fixed, so a world of N trains on N times the images per step. "
                  "images_per_s is global; speed-up and efficiency divide by the same case at world size 1 "
                  "(scaling_efficiency = images_per_s(N) / (N x images_per_s(1))). The paper reported 3.75x on "
                  "4 GPUs (efficiency 0.94).")
    cols = [c for c in ["arch", "device", "dtype", "batch_size", "world_size", "backend", "threads_per_rank",
                        "images_per_s", "speedup", "scaling_efficiency", "median", "rounds"] if c in scaling]
    r.table("scaling", scaling.sort_values(["arch", "device", "batch_size", "world_size"])[cols])
    r.figure("scaling_speedup", lambda ax: plots.scaling(scaling, ax, "speedup"))
    r.figure("scaling_efficiency", lambda ax: plots.scaling(scaling, ax, "scaling_efficiency"))


def _ablation_section(r: Report, abl, ablation_effects: dict) -> None:
    r.add("h2", "Ablations")
    for note in abl.skipped:
        r.add("text", f"Skipped input: {note}")
    for study, eff in ablation_effects.items():
        r.add("h3", f"Study {study}")
        r.table(f"effects_{study}", eff.drop(columns=["study"]))
        runs = abl.runs[abl.runs["study"] == study]
        bad = runs[runs["status"] != "ok"]
        if not bad.empty:
            r.table(f"unfinished_{study}", bad[["variant", "seed", "status", "error", "diverged_epoch"]],
                    "failed and diverged runs")
        if (eff["variant"] != "baseline").any():
            r.figure(f"effects_{study}", lambda ax, s=study, e=eff: plots.ablation_effects(e, ax, study=s))
        hist = abl.history[abl.history["study"] == study] if not abl.history.empty else abl.history
        if not hist.empty:
            r.figure(f"curves_{study}", lambda ax, s=study: plots.learning_curves(abl.history, ax, study=s))
            r.figure(f"lr_{study}", lambda ax, s=study: plots.lr_trace(abl.history, ax, study=s))
