"""The project's one error model.

`UserError` is a mistake the user can fix (a bad option or study key, a missing dataset folder, a folder in use,
a full disk): the command-line boundaries catch it alone, print its message on one line and exit 2 (or the
class's `exit_code`). Every other exception is a bug and keeps its traceback. Specific errors subclass it, and
also the builtin a Python caller would expect (`ConfigError` is a `ValueError`, `DataRootError` a
`FileNotFoundError`), so library callers can keep catching what they always caught.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user gave (option, file, folder, environment), with a message that says the fix."""

    exit_code = 2
