"""The checker a policy file is read with: it walks the YAML (keys and items know their lines)
and collects every mistake as (line, message) instead of stopping at the first one."""

from __future__ import annotations

import reprlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from handlers.policy.yaml_lines import LineList, LineMap

__all__ = ["Checker", "shown"]

# Column widths in storage.models: a clear message beats PostgreSQL's "value too long".
_MAX_LEN = {"email": 320, "name": 200, "slack_id": 64, "teams_id": 64, "id": 100}


def shown(value: Any) -> str:
    """`value` as a message quotes it: repr() for short values, cut short for long ones
    whatever their size or nesting."""
    return _SHOWN.repr(value)


_SHOWN = reprlib.Repr()  # keyword arguments only from Python 3.12
_SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxdict, _SHOWN.maxstring = 2, 4, 4, 60
_SHOWN.maxother = 60


@dataclass
class Checker:
    errors: list[tuple[int, str]] = field(default_factory=list)

    def fail(self, line: int, path: str, message: str) -> None:
        self.errors.append((line, f"{path}: {message}" if path else message))

    def keys(self, item: LineMap, path: str, allowed: tuple[str, ...]) -> None:
        for key in item:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                self.fail(
                    item.lines.get(key, item.line),
                    where,
                    f"unknown key (expected one of: {', '.join(allowed)})",
                )

    def items(self, root: LineMap, name: str) -> Iterator[tuple[str, LineMap]]:
        """Each mapping in the list `name`, with its path (e.g. roles[1]); others are errors."""
        value = root.get(name)
        if value is None:
            return
        if not isinstance(value, LineList):
            self.fail(root.lines.get(name, root.line), name, "must be a list")
            return
        for index, item in enumerate(value):
            path = f"{name}[{index}]"
            if isinstance(item, LineMap):
                yield path, item
            else:
                self.fail(value.lines[index], path, "must be a mapping, e.g. {key: value, ...}")

    def text(
        self,
        item: LineMap,
        key: str,
        path: str,
        *,
        required: bool = True,
        multiline: bool = False,
    ) -> str | None:
        value = item.get(key)
        line = item.lines.get(key, item.line)
        if value is None or value == "":
            if required:
                self.fail(line, path, f"{key} is required")
            return None
        if not isinstance(value, str):
            self.fail(line, f"{path}.{key}", f"must be text, not {shown(value)} (quote it)")
            return None
        value = value.strip()
        if not multiline and ("\n" in value or "\r" in value):
            # A name with a line break would print as a line of its own in the plan.
            self.fail(line, f"{path}.{key}", "contains a line break; keep it on one line")
            return None
        limit = _MAX_LEN.get(key)
        if limit is not None and len(value) > limit:
            self.fail(line, f"{path}.{key}", f"is too long (at most {limit} characters)")
            return None
        return value

    def unique(self, seen: dict[str, int], value: str | None, line: int, path: str) -> None:
        if value is None:
            return
        folded = value.lower()
        if folded in seen:
            self.fail(line, path, f"{value} is listed twice (first at line {seen[folded]})")
        else:
            seen[folded] = line
