"""One check's result, shared by `pim-bot doctor` and the start-up checks of `serve`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str  # what was found, one line
    fix: str = ""  # what to do about it, when not ok
    skipped: bool = False  # not configured: nothing to check

    @classmethod
    def passed(cls, name: str, detail: str) -> Check:
        return cls(name, True, detail)

    @classmethod
    def failed(cls, name: str, detail: str, fix: str) -> Check:
        return cls(name, False, detail, fix)

    @classmethod
    def skip(cls, name: str, detail: str) -> Check:
        return cls(name, True, detail, skipped=True)

    def line(self) -> str:
        """The one line `serve` prints when it refuses to start."""
        return f"{self.name}: {self.detail}" + (f" — {self.fix}" if self.fix else "")


class StartupRefused(RuntimeError):
    """A credential `serve` was given does not work: it refuses to start, with one line."""

    def __init__(self, check: Check) -> None:
        super().__init__(check.line())
        self.check = check
