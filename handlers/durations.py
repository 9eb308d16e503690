"""Durations as people type them in chat: ``90m``, ``1h30m``, ``1d`` or ISO 8601 ``PT2H``."""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = [
    "MAX_DURATION",
    "DurationError",
    "format_duration",
    "looks_like_duration",
    "parse_duration",
]

# Ten years is far beyond any role's max_duration; the cap exists so that a typo like
# 99999999999d is refused politely instead of overflowing timedelta.
MAX_DURATION = timedelta(days=3650)
_MAX_SECONDS = int(MAX_DURATION.total_seconds())

_EXAMPLES = "use e.g. 90m, 2h, 1h30m, 1d or PT2H"
_UNIT_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}

# re.ASCII: with IGNORECASE alone, odd Unicode letters (the long s, the Kelvin sign) would match
# ASCII units and slip through as durations.
_FLAGS = re.IGNORECASE | re.ASCII
_COMPACT = re.compile(
    r"(?:(?P<d>[0-9]+)d)?(?:(?P<h>[0-9]+)h)?(?:(?P<m>[0-9]+)m)?(?:(?P<s>[0-9]+)s)?", _FLAGS
)
# The lookahead after T stops "P1DT" (a T with nothing after it) from passing as valid.
_ISO = re.compile(
    r"P(?:(?P<w>[0-9]+)W)?(?:(?P<d>[0-9]+)D)?"
    r"(?:T(?=[0-9])(?:(?P<h>[0-9]+)H)?(?:(?P<m>[0-9]+)M)?(?:(?P<s>[0-9]+)S)?)?",
    _FLAGS,
)
# A year or month has no fixed length, so P1Y/P2M are refused rather than guessed at.
_ISO_CALENDAR = re.compile(r"P[0-9]+[YM]", _FLAGS)
_FRACTION = re.compile(r"[0-9][.,][0-9]", _FLAGS)
_LOOKS_LIKE = re.compile(r"[+-]|(?:PT?)?[0-9]", _FLAGS)


class DurationError(ValueError):
    """A duration the bot cannot use; str() is a short sentence for the person who typed it."""


def looks_like_duration(token: str) -> bool:
    """Whether a command token was meant as a duration (the grammar's rule for activate).

    A sign counts on its own, so "-2h" or "--for 2h" is refused rather than silently becoming the
    start of a justification.
    """
    return _LOOKS_LIKE.match(token) is not None


def parse_duration(text: str) -> timedelta:
    """Read ``90m``, ``1h30m``, ``1d2h``, ``45s``, ``PT2H``, ``P1DT2H30M`` or ``P1W``.

    Only positive durations up to MAX_DURATION come back; anything else is a DurationError.
    """
    body = text.strip()
    if not body:
        raise DurationError(f"the duration is empty; {_EXAMPLES}")
    negative = body.startswith("-")
    unsigned = body[1:] if body.startswith(("+", "-")) else body
    seconds = _seconds(unsigned)
    if seconds is None:
        raise DurationError(_why_not(body))
    if negative or seconds == 0:
        raise DurationError("duration must be positive")
    if seconds > _MAX_SECONDS:
        raise DurationError(f"duration is too long (at most {MAX_DURATION.days} days)")
    return timedelta(seconds=seconds)


def format_duration(td: timedelta) -> str:
    """The compact form parse_duration reads back: ``1h30m``, ``8h``, ``1d2h``, ``0s``.

    Sub-second parts are dropped; nothing in PIM is finer than a second.
    """
    # Integer microseconds: -timedelta.min overflows and floats blur past a few centuries.
    micros = (td.days * 86_400 + td.seconds) * 1_000_000 + td.microseconds
    sign = "-" if micros < 0 else ""
    remaining = abs(micros) // 1_000_000
    if remaining == 0:
        return "0s"
    parts = []
    for unit in "dhms":
        count, remaining = divmod(remaining, _UNIT_SECONDS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)


def _seconds(body: str) -> int | None:
    """Total seconds in an unsigned duration, or None when it is not one of our forms."""
    match = _COMPACT.fullmatch(body) or _ISO.fullmatch(body)
    if match is None:
        return None
    found = {unit: digits for unit, digits in match.groupdict().items() if digits is not None}
    if not found:
        return None
    return sum(_number(digits) * _UNIT_SECONDS[unit] for unit, digits in found.items())


def _number(digits: str) -> int:
    # int() refuses strings over 4300 digits; anything past 15 is beyond the cap in any unit.
    significant = digits.lstrip("0") or "0"
    return int(significant) if len(significant) <= 15 else 10**15


def _why_not(body: str) -> str:
    unsigned = body.lstrip("+-")
    if _ISO_CALENDAR.match(unsigned):
        return "years and months have no fixed length; use days instead, e.g. P30D or 30d"
    if _FRACTION.search(unsigned):
        return f"{_shown(body)} is not a duration; use whole units, e.g. 1h30m rather than 1.5h"
    return f"{_shown(body)} is not a duration; {_EXAMPLES}"


def _shown(text: str) -> str:
    # repr() escapes control characters, so the message stays on one line whatever was typed.
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= 40 else flat[:39] + "…")
