"""Checks for configuration values, shared by the config dataclasses and everything that feeds them.

Each config dataclass keeps a `CHECKS` table (field -> check) that its `__post_init__` runs, so a value is
judged the same way whether it comes from Python, a CLI option or a study file; callers that know where the
value came from (an option, a TOML key) catch `ConfigError` and add that. A check judges one field alone;
rules that tie two fields together stay in `__post_init__` and name both fields.

    CHECKS = {"lr": number(0, low_open=True)}
    check_field(CHECKS, "lr", float("inf"))   # ConfigError: lr must be a finite number > 0, got inf

Command-line options go through the same checks: `option_value` parses an option's text and judges it, so a bad
value is one line naming the option, what it takes and what was typed.

    option_value("--min-effect", "-1", MIN_EFFECT)   # ConfigError: --min-effect must be a non-negative number
                                                     # in metric units, got '-1'
    option_value("--threshold", "5%", number(0), scale="percent")   # 0.05
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Iterable

from vggcore.errors import UserError

SEED_MAX = 2 ** 63 - 1   # torch.Generator.manual_seed and vggcore.seeds stay within a signed 64-bit integer

Check = Callable[[str, Any], None]


class ConfigError(UserError, ValueError):
    """A configuration value outside what is allowed. `fields` names the field(s) involved, `value` the value,
    `allowed` (when the check can say it in a phrase) what the field takes."""

    def __init__(self, message: str, fields: tuple[str, ...], value: Any = None, allowed: str | None = None) -> None:
        super().__init__(message)
        self.fields, self.value, self.allowed = fields, value, allowed


def _fail(name: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{name} must be {allowed}, got {value!r}", (name,), value, allowed)


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
           high_open: bool = False, allowed: str | None = None) -> Check:
    """A finite int or float (never a bool) within the bounds; open bounds exclude the end. `allowed` says it in
    the user's terms when the bounds alone would not ("a non-negative number in metric units")."""
    if allowed is None and low is not None and high is not None:
        allowed = f"a finite number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif allowed is None and low is not None:
        allowed = f"a finite number {'>' if low_open else '>='} {low:g}"
    elif allowed is None:
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


# The smallest difference that matters, in the units of a study's metric: decisions ("equivalent") and power.
MIN_EFFECT: Check = number(0, allowed="a non-negative number in metric units")
SCALES = ("number", "percent", "fraction")


def option_value(option: str, text: str | None, check: Check, *, integer: bool = False, scale: str = "number"):
    """The value of command-line `option` typed as `text` (None stays None), judged by `check` under the option's
    name; ConfigError says what the option takes and what was typed. `scale`: "number" as typed; "percent": 5
    and 5% both mean 0.05; "fraction": 0.02 as typed, 2% means 0.02 too."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    if text is None:
        return None
    raw = str(text).strip()
    percent = scale == "percent" or (scale == "fraction" and raw.endswith("%"))
    if scale != "number":
        raw = raw.removesuffix("%")
    value: Any
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        value = raw  # not a number at all: the check refuses it in its own words
    if percent and not isinstance(value, str):
        value = value / 100
    try:
        check(option, value)
    except ConfigError as err:
        if err.allowed is None:
            raise
        raise ConfigError(f"{option} must be {err.allowed}, got {text!r}", (option,), text, err.allowed) from None
    return value


def env_value(name: str, parse: Callable[[str], Any], ok: Callable[[Any], bool], expected: str) -> Any:
    """The value of environment variable `name` as `parse` reads it, None when the variable is unset or empty; a
    UserError naming the variable, what was set and what it takes (`expected`) when `parse` raises ValueError or
    `ok` refuses the value."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = parse(raw)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise UserError(f"{name}={raw!r}: expected {expected}")
    return value
