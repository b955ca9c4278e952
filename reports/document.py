"""The report as a document: a list of blocks (heading, text, table, figure) rendered twice, to Markdown and to
HTML, so the two never drift apart. Every table is also written as CSV (machine column names, raw numbers), every
figure as PNG. Sections (`reports.sections`) add blocks; every table reaches the reader through
`reports.readable` (plain headers, units, coloured decisions, footnoted flags, parts that fit 1,400 px).
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
from tabulate import tabulate

from .load import ReportInputError
from .readable import Cell, Table, readable, split, wraps


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
                parts.extend(_markdown_table(b.content, b.caption))
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
                body.extend(_html_table(b.content, b.caption))
            else:
                body.append(f'<figure><img src="{_attr(quote(b.content))}" alt="{_attr(b.caption)}">'
                            f"<figcaption>{html.escape(b.caption)}</figcaption></figure>")
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")


def _attr(text: str) -> str:
    """Text safe inside a double- or single-quoted HTML attribute."""
    return html.escape(str(text), quote=True)


def _md_text(text: str) -> str:
    """Text safe inside Markdown's image brackets."""
    return re.sub(r"([\\\[\]])", r"\\\1", text)


# The page fits a 1,400 px window: tables are cut to readable.BUDGET_PX; long cells wrap, short ones never break.
STYLE = ("body{font-family:system-ui,sans-serif;max-width:1340px;margin:2em auto;padding:0 16px;color:#222}"
         "p,figcaption{max-width:80em}"
         "table.t{border-collapse:collapse;font-size:13px;margin:.3em 0 1em;max-width:100%}"
         "table.t td,table.t th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}"
         "table.t th{border-bottom:2px solid #bbb;vertical-align:bottom;font-weight:600}"
         "table.t .num{text-align:right}table.t td.nw{white-space:nowrap}"
         "table.t td.wr{overflow-wrap:anywhere;min-width:10em}"
         ".v.good{color:#1a7f37;font-weight:600}.v.bad{color:#cf222e;font-weight:600}.v.same{color:#0969da}"
         ".v.open{color:#6e7781}.flag{color:#9a6700;border-bottom:1px dotted #9a6700;cursor:help}"
         "img{max-width:100%}figcaption,p.cap,p.note,ol.fn{color:#666;font-size:12px;margin-bottom:0}"
         "p.note{margin-top:0}ol.fn{margin-top:0;padding-left:1.5em}")
SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def _footnotes(table: Table) -> dict[str, int]:
    """Reason -> footnote number, in order of first appearance; one number per distinct reason."""
    numbers: dict[str, int] = {}
    for row in table.rows:
        for cell in row:
            if cell.reason and cell.reason not in numbers:
                numbers[cell.reason] = len(numbers) + 1
    return numbers


def _parts(frame: pd.DataFrame, caption: str) -> list[tuple[str, Table, dict[str, int]]]:
    """(caption, part, footnote numbers) for each part of the readable table; the numbers span all parts."""
    whole = readable(frame)
    numbers = _footnotes(whole)
    parts = split(whole)
    return [(caption if i == 0 else f"{caption} (continued)", part, numbers) for i, part in enumerate(parts)]


def _markdown_table(frame: pd.DataFrame, caption: str) -> list[str]:
    out = []
    for cap, part, numbers in _parts(frame, caption):
        out.append(f"*{cap}*")
        out.extend(f"*{note}*" for note in part.notes)

        def text(cell: Cell) -> str:
            mark = str(numbers[cell.reason]).translate(SUPERSCRIPT) if cell.reason else ""
            return (cell.text + mark).replace("|", "\\|")

        rows = [[text(c) for c in row] for row in part.rows]
        headers = [h.replace("|", "\\|") for h in part.headers]
        out.append(tabulate(rows, headers, tablefmt="pipe", disable_numparse=True,
                            colalign=["right" if n else "left" for n in part.numeric]))
        used = {c.reason for row in part.rows for c in row if c.reason}
        notes = [f"- {str(n).translate(SUPERSCRIPT)} {reason}" for reason, n in numbers.items() if reason in used]
        if notes:
            out.append("\n".join(notes))
    return out


def _html_cell(cell: Cell, numbers: dict[str, int]) -> str:
    text = html.escape(cell.text)
    if cell.reason:
        return (f'<span class="flag" title="{_attr(cell.reason)}">{text}<sup>{numbers[cell.reason]}</sup>'
                "</span>")
    return f'<span class="v {cell.tone}">{text}</span>' if cell.tone else text


def _html_table(frame: pd.DataFrame, caption: str) -> list[str]:
    out = []
    for cap, part, numbers in _parts(frame, caption):
        out.append(f"<p class='cap'>{html.escape(cap)}</p>")
        out.extend(f"<p class='note'>{html.escape(note)}</p>" for note in part.notes)
        kinds = []
        for i, numeric in enumerate(part.numeric):
            cells = [row[i] for row in part.rows]
            kinds.append(" ".join(k for k in ("num" if numeric else "", "wr" if wraps(cells) else "nw") if k))
        head = "".join(f'<th class="{"num" if n else ""}">{html.escape(h)}</th>'
                       for h, n in zip(part.headers, part.numeric))
        body = "".join("<tr>" + "".join(f'<td class="{k}">{_html_cell(c, numbers)}</td>' for c, k in zip(row, kinds))
                       + "</tr>" for row in part.rows)
        out.append(f'<table class="t"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
        used = [(n, reason) for reason, n in numbers.items() if any(c.reason == reason for r in part.rows for c in r)]
        if used:
            out.append("<ol class='fn'>" + "".join(f'<li value="{n}">{html.escape(reason)}</li>' for n, reason in used)
                       + "</ol>")
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
