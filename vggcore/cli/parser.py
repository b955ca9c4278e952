"""The parser every vggbench command line uses: no abbreviated options, defaults in --help."""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written (they hold example commands), and every option's default after its help, except
    a default of None or False (nothing given, a switch left off)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        positional_only = not action.option_strings and action.nargs not in ("?", "*")
        if ("%(default)" in text or positional_only or action.default is None or action.default is False
                or action.default == argparse.SUPPRESS):
            return text
        return text + " (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """The parser of every vggbench command line: no abbreviated options (argparse would take `--worker 2` as
    `--workers 2`), defaults shown in --help. The subcommands `add_subparsers` makes are Parsers too."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
