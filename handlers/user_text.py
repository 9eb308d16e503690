"""Control characters in text people type: one rule for chat commands, forms, reasons and
policy files.

PostgreSQL cannot store U+0000 at all (the insert fails and the person hears nothing), and the
other control characters can hide text or rewrite a terminal line (`audit export`, the
console). Tab and line feed are ordinary typing and stay; a Windows line end (CR LF) is made a
plain line feed, which changes nothing a reader sees. Everything else in C0, DEL and C1 is
refused rather than stripped, so what is stored is exactly what the person meant.
"""

from __future__ import annotations

import re

from handlers.errors import InvalidInput

__all__ = ["control_character", "refusal", "user_text"]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def control_character(text: str) -> str | None:
    """The first control character in `text` that is refused, as `U+0000`; None when clean.
    A CR directly before an LF is not counted: `user_text` turns CR LF into LF."""
    found = _CONTROL.search(text.replace("\r\n", "\n"))
    return f"U+{ord(found.group()):04X}" if found else None


def refusal(what: str, code: str) -> str:
    """The one-line answer for `what` (e.g. "The justification") holding control character
    `code`."""
    return f"{what} contains a control character ({code}); remove it and try again."


def user_text(value: str | None, *, what: str) -> str | None:
    """`value` stripped, CR LF made LF, or None when empty. InvalidInput, naming `what`,
    when it holds a refused control character."""
    if value is None:
        return None
    if not isinstance(value, str):  # a JSON payload field holding a list or a number
        raise InvalidInput(f"The {what} must be text.")
    if (code := control_character(value)) is not None:
        raise InvalidInput(refusal(f"The {what}", code))
    return value.replace("\r\n", "\n").strip() or None
