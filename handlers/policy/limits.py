"""Limits that keep a policy file from costing more than its size: aliases, nesting depth,
string lengths and control characters, checked on YAML's event stream before any value is
built.

Why the event stream: a 1 KB file of nested aliases ("billion laughs") expands to hundreds of
millions of values once built, and 10,000 nested brackets overflow a recursive builder. Events
arrive one at a time from an iterative parser, so counting as they pass costs time and memory in
proportion to the text, and the first limit crossed stops the reading with its line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from handlers.user_text import control_character

__all__ = ["DEFAULT_MAX_BYTES", "Budget", "ParserBase", "first_excess", "too_big"]

DEFAULT_MAX_BYTES = 5_000_000
MAX_DEPTH = 20
# Values that aliases may add once expanded: room for settings shared between roles, none
# for a bomb.
ALIAS_BUDGET = 10_000
MAX_KEY = 256
# The longest text a policy holds is a role description.
MAX_VALUE = 2_000

# libyaml's parser when PyYAML was built with it (its wheels are), else the pure-Python one.
ParserBase: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def too_big(max_bytes: int) -> str:
    return (
        f"the file is larger than {max_bytes} bytes, the limit for policy files "
        "(PIM_POLICY_MAX_BYTES)"
    )


@dataclass(slots=True)
class _Open:
    """A mapping or sequence being read: its anchor, its size so far, whether it is a
    mapping, and how many keys and values it has had (even count: a key comes next)."""

    anchor: str | None
    size: int = 1
    mapping: bool = False
    items: int = 0


def first_excess(text: str) -> tuple[int, str] | None:
    """(line, message) for the first limit the text crosses, or None.

    Text that is not YAML is left to the loader, which names its line.
    """
    parser = ParserBase(text)
    try:
        return _scan(parser)
    finally:
        parser.dispose()


# Event classes by kind, for dispatch on type(event): a large file has millions of events.
_STARTS = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_ENDS = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def _scan(parser: Any) -> tuple[int, str] | None:
    budget, get_event = Budget(), parser.get_event
    while (event := get_event()) is not None and type(event) is not yaml.StreamEndEvent:
        if (excess := budget.see(event)) is not None:
            return excess
    return None


class Budget:
    """The limits, checked one event at a time: see() gives (line, message) for the first
    event that crosses one. handlers.policy.yaml_stream builds the document from the same
    events as it checks them."""

    __slots__ = ("expanded", "sizes", "stack")

    def __init__(self) -> None:
        self.stack: list[_Open] = []
        self.sizes: dict[str, int | None] = {}  # anchor -> expanded size; None while open
        self.expanded = 0

    def see(self, event: Any) -> tuple[int, str] | None:
        stack, sizes, kind = self.stack, self.sizes, type(event)
        if kind is yaml.ScalarEvent:
            if (problem := _scalar_problem(event.value, key=_next_is_key(stack))) is not None:
                return event.start_mark.line + 1, problem
            if event.anchor:
                sizes[event.anchor] = 1
            if stack:
                stack[-1].size += 1
        elif kind in _STARTS:
            if len(stack) >= MAX_DEPTH:
                return (
                    event.start_mark.line + 1,
                    f"values are nested more than {MAX_DEPTH} levels deep",
                )
            _next_is_key(stack)
            stack.append(_Open(event.anchor, mapping=kind is yaml.MappingStartEvent))
            if event.anchor:
                sizes[event.anchor] = None
        elif kind in _ENDS:
            done = stack.pop()
            if done.anchor:
                sizes[done.anchor] = done.size
            _grow(stack, done.size)
        elif kind is yaml.AliasEvent and event.anchor in sizes:
            return self._alias(event)
        return None

    def _alias(self, event: Any) -> tuple[int, str] | None:
        size = self.sizes[event.anchor]
        line = event.start_mark.line + 1
        if size is None:
            return line, f"the alias *{event.anchor} refers to a value that contains it"
        self.expanded += size
        if self.expanded > ALIAS_BUDGET:
            return line, (
                f"the aliases in this file expand to more than {ALIAS_BUDGET} "
                "values; write the values out instead"
            )
        _next_is_key(self.stack)
        _grow(self.stack, size)
        return None


def _scalar_problem(value: str, *, key: bool) -> str | None:
    limit, what = (MAX_KEY, "key") if key else (MAX_VALUE, "value")
    if len(value) > limit:
        return f"a {what} is too long ({len(value)} characters; at most {limit})"
    # isprintable() is False for every control character: most values need no search.
    if not value.isprintable() and (code := control_character(value)) is not None:
        return f"a {what} contains a control character ({code}); remove it"
    return None


def _next_is_key(stack: list[_Open]) -> bool:
    """Whether the node starting now is a mapping key; counts it in its parent."""
    if not stack:
        return False
    parent = stack[-1]
    parent.items += 1
    return parent.mapping and parent.items % 2 == 1


def _grow(stack: list[_Open], size: int) -> None:
    if stack:
        stack[-1].size += size
