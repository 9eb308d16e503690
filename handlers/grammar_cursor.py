"""The tokenizer under handlers.grammar: a cursor that reads a ``/pim …`` command left to right.

The cursor knows nothing of CommandError or USAGE: it is built with a `fail` callback that turns
a one-line reason into the exception to raise, so the grammar decides what a failure looks like.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["Cursor", "shown"]

# \S follows str.isspace(), the same notion of a gap that str.split() and strip() use.
_WORD = re.compile(r"\S+")
_TEAMS_CLOSE = re.compile(r"</at>", re.IGNORECASE | re.ASCII)
# Chat clients turn straight quotes into curly ones, so each family closes with any of its kind.
_DOUBLE = '"\u201c\u201d'
_SINGLE = "'\u2018\u2019"
_CLOSERS = {q: _DOUBLE for q in _DOUBLE} | {q: _SINGLE for q in _SINGLE}


class Cursor:
    """Reads a command left to right, so a justification can be cut raw from where it starts.

    Tokens are read one at a time rather than all up front: quotes only group where a role or user
    is expected, and the apostrophe in "I'm on call" must never be mistaken for one.
    """

    __slots__ = ("_fail", "command", "pos", "text")

    def __init__(
        self, text: str, command: str, *, start: int, fail: Callable[[str], Exception]
    ) -> None:
        self.text = text
        self.command = command
        self.pos = start
        self._fail = fail

    def fail(self, reason: str) -> Exception:
        """The exception to raise for `reason`; the caller raises it."""
        return self._fail(reason)

    def peek_word(self) -> str | None:
        found = _WORD.search(self.text, self.pos)
        return found.group() if found else None

    def word(self) -> str | None:
        found = _WORD.search(self.text, self.pos)
        if found is None:
            return None
        self.pos = found.end()
        return found.group()

    def operand(self) -> str | None:
        """A word, a quoted phrase (without its quotes) or a ``<…>`` / ``<at>…</at>`` mention."""
        text = self.text
        if (found := _WORD.search(text, self.pos)) is None:
            return None
        start = found.start()
        if closers := _CLOSERS.get(text[start], ""):
            close = next((i for i in range(start + 1, len(text)) if text[i] in closers), -1)
            if close < 0:
                raise self.fail(f"the quote before {shown(text[start + 1 :])} is never closed")
            return self._group(start, close + 1, inner=text[start + 1 : close].strip())
        if text[start : start + 4].lower() == "<at>":
            if (mention := _TEAMS_CLOSE.search(text, start)) is None:
                raise self.fail(f"the Teams mention {shown(text[start:])} is never closed")
            return self._group(start, mention.end(), inner=text[start : mention.end()])
        if text[start] == "<" and (close := text.find(">", start)) >= 0:
            return self._group(start, close + 1, inner=text[start : close + 1])
        return self.word()

    def rest(self) -> str:
        remainder, self.pos = self.text[self.pos :].strip(), len(self.text)
        return remainder

    def done(self, hint: str = "") -> None:
        if (extra := self.peek_word()) is None:
            return
        if self.command in ("roles", "requests", "approvals", "digest"):
            raise self.fail(f"{self.command} takes nothing after it (got {shown(extra)})")
        raise self.fail(f"unexpected {shown(extra)}{hint}")

    def _group(self, start: int, end: int, *, inner: str) -> str:
        if end < len(self.text) and not self.text[end].isspace():
            raise self.fail(f"put a space after {shown(self.text[start:end])}")
        self.pos = end
        return inner


def shown(text: str | None) -> str:
    """Typed text quoted for a message: one line (repr() escapes control characters), ≤40 chars."""
    flat = " ".join((text or "").split())
    return repr(flat if len(flat) <= 40 else flat[:39] + "…")
