"""Checks for configuration values, shared by the config dataclasses and everything that feeds them.

Each config dataclass keeps a `CHECKS` table (field -> check) that its `__post_init__` runs, so a value is
judged the same way whether it comes from Python, a CLI option or a study file; callers that know where the
value came from (an option, a TOML key) catch `ConfigError` and add that. A check judges one field alone;
rules that tie two fields together stay in `__post_init__` and name both fields.

    CHECKS = {"lr": number(0, low_open=True)}
    check_field(CHECKS, "lr", float("inf"))   # ConfigError: lr must be a finite number > 0, got inf
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

from .errors import UserError

SEED_MAX = 2 ** 63 - 1   # torch.Generator.manual_seed and our seed_for() stay within a signed 64-bit integer

Check = Callable[[str, Any], None]


class ConfigError(UserError, ValueError):
    """A configuration value outside what is allowed. `fields` names the field(s) involved, `value` the value."""

    def __init__(self, message: str, fields: tuple[str, ...], value: Any = None) -> None:
        super().__init__(message)
        self.fields, self.value = fields, value


def _fail(name: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{name} must be {allowed}, got {value!r}", (name,), value)


def integer(low: int, high: int | None = None, hint: str = "") -> Check:
    """An int (never a bool) in [low, high]."""
    if high is not None:
        allowed = f"an integer in [{low}, {high}]"
    else:
        allowed = "a positive integer" if low == 1 else f"an integer >= {low}"

    def check(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            _fail(name, value, allowed + hint)
    return check


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False) -> Check:
    """A finite int or float (never a bool) within the bounds; open bounds exclude the end."""
    if low is not None and high is not None:
        allowed = f"a finite number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        allowed = f"a finite number {'>' if low_open else '>='} {low:g}"
    else:
        allowed = "a finite number"

    def check(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            _fail(name, value, allowed)
        if low is not None and (value <= low if low_open else value < low):
            _fail(name, value, allowed)
        if high is not None and (value >= high if high_open else value > high):
            _fail(name, value, allowed)
    return check


def boolean(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        _fail(name, value, "true or false")


def text(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        _fail(name, value, "a non-empty string")


def choice(options: Iterable[str], what: str | None = None) -> Check:
    options = tuple(options)

    def check(name: str, value: Any) -> None:
        if value not in options:
            raise ConfigError(f"unknown {what or name} {value!r}; choose one of {', '.join(options)}", (name,), value)
    return check


def optional(inner: Check) -> Check:
    """None, or a value `inner` accepts."""
    def check(name: str, value: Any) -> None:
        if value is not None:
            inner(name, value)
    return check


def check_field(checks: dict[str, Check], name: str, value: Any) -> None:
    """Judge one field's value on its own (fields without a check pass)."""
    if name in checks:
        checks[name](name, value)


def check_fields(obj: object, checks: dict[str, Check]) -> None:
    for name, check in checks.items():
        check(name, getattr(obj, name))
