"""The project's one error model, and the boundary every command line runs behind.

`UserError` is a mistake the user can fix (a bad option or study key, a missing dataset folder, a folder in use,
a full disk): the command-line boundary (`run_command`) catches it alone, prints its message on one line and exits
2 (or the class's `exit_code`). Every other exception is a bug: it keeps its traceback, followed by one line
saying so, and exits 1. Specific errors subclass `UserError`, and also the builtin a Python caller would expect
(`ConfigError` is a `ValueError`, `DataRootError` a `FileNotFoundError`), so library callers can keep catching
what they always caught.

    def main(argv=None) -> int:
        args = parser().parse_args(argv)
        return run_command(args.func, args)
"""

from __future__ import annotations

import sys
import traceback
from typing import Callable

EXIT_BUG = 1
EXIT_INTERRUPTED = 130
BUG_LINE = ("this is a bug in vggbench, not a mistake in your input: please report it to the vggbench "
            "maintainers with the traceback above and the command you ran")


class UserError(Exception):
    """A mistake in what the user gave (option, file, folder, environment), with a message that says the fix."""

    exit_code = 2


class UsageError(UserError, ValueError):
    """Options that cannot go together, or a command that needs an option it was not given."""


class MissingPackage(UserError, ImportError):
    """An optional package the command needs is not installed (or not importable by this Python)."""


def run_command(command: Callable[..., int | None], *args) -> int:
    """`command(*args)` behind the boundary: its return value (None = 0); a UserError is `error: MESSAGE` on one
    line and its exit_code; Ctrl-C is `interrupted` and 130; anything else is a bug: traceback, BUG_LINE, 1."""
    try:
        return command(*args) or 0
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:  # noqa: BLE001 - the boundary: a bug must reach the user whole, not as a one-liner
        traceback.print_exc()
        print(BUG_LINE, file=sys.stderr)
        return EXIT_BUG
