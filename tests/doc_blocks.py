"""The fenced code blocks of a Markdown page and their lines: one reader for tests/test_docs.py (the options a page
shows exist) and tests/test_doc_commands.py (the commands a page shows run)."""

from __future__ import annotations

import re


def fenced_blocks(text: str):
    """(language, first line number of the body, body) of every fenced code block."""
    for m in re.finditer(r"^```([\w-]*)[^\n]*\n(.*?)^```", text, re.S | re.M):
        yield m.group(1), text[:m.start(2)].count("\n") + 1, m.group(2)


def block_lines(first: int, body: str):
    """(1-based line number on the page, line) of a block's lines; a line ending in a backslash is joined with
    the lines that continue it, as the shell reads one command."""
    lines, i = body.splitlines(), 0
    while i < len(lines):
        number, line = first + i, lines[i]
        while line.endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line[:-1] + " " + lines[i].strip()
        i += 1
        yield number, line
