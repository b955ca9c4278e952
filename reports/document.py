"""The report as a document: a list of blocks (heading, text, table, figure) rendered twice, to Markdown and to
HTML, so the two never drift apart. Every table is also written as CSV, every figure as PNG. Sections
(`reports.sections`) add blocks; nothing here knows what the numbers mean.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import matplotlib.pyplot as plt
import pandas as pd

from .load import ReportInputError


@dataclass
class Block:
    kind: str            # "h1", "h2", "h3", "text", "table", "figure"
    content: object      # str, DataFrame, or figure file name
    caption: str = ""


def slug(text: str) -> str:
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
            stem = slug(name)[:MAX_STEM]
            if not stem or stem in self.stems.values() or stem != slug(name):
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
                body.append(f'<{b.kind} id="{_attr(slug(b.content))}">{html.escape(b.content)}</{b.kind}>')
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


def prepare(out: Path) -> None:
    try:
        for sub in ("figures", "tables"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise ReportInputError(f"cannot write the report to {out}: {err.strerror or err}") from None
