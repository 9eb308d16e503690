"""Reading a policy file in one pass: the document is built straight from YAML's events while
handlers.policy.limits checks the same events, so there is no second reading of the text and
no node tree (a 100,000-principal file's tree, two position marks per node, takes most of a
gigabyte before a single value exists).

The builder knows what policy files are made of: mappings, lists, scalars, anchors and
aliases. For anything else (an explicit tag on a mapping or list, a merge key `<<`, several
documents, a list used as a key, an unknown alias or tag) it steps aside: the limits are
still checked to the end, then PyYAML's loader (handlers.policy.yaml_lines) builds the file
exactly as before, with the same errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from handlers.policy.limits import Budget
from handlers.policy.yaml_lines import LineList, LineMap, Loader, load_with_lines

__all__ = ["LimitExceeded", "load_checked"]

_STR, _MAP, _SEQ = (f"tag:yaml.org,2002:{name}" for name in ("str", "map", "seq"))
_PLAIN_TAGS = (None, "!")
_NO_KEY = object()


class LimitExceeded(Exception):  # noqa: N818 - it is what the caller reports, not a failure
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line, self.message = line, message


class _Unusual(Exception):  # noqa: N818 - a hand-over to PyYAML's loader, not an error
    """Something left to PyYAML's loader."""


def load_checked(text: str) -> tuple[Any, list[tuple[int, str]]]:
    """The document (mappings as LineMap, lists as LineList) and any keys written twice.

    LimitExceeded at the first limit the text crosses; yaml.YAMLError for text that is not
    YAML (as PyYAML's loader names it)."""
    loader = Loader(text)
    budget, builder = Budget(), _Builder(loader)
    usual = True
    try:
        while (event := loader.get_event()) is not None:
            if type(event) is yaml.StreamEndEvent:
                break
            if (excess := budget.see(event)) is not None:
                raise LimitExceeded(*excess)
            if usual:
                try:
                    builder.feed(event)
                except (_Unusual, yaml.constructor.ConstructorError):
                    usual = False  # keep checking the limits; PyYAML builds it afterwards
    finally:
        loader.dispose()
    if not usual:
        return load_with_lines(text)
    return builder.root, builder.duplicates


@dataclass(slots=True)
class _Open:
    value: LineMap | LineList
    key: Any = _NO_KEY  # a mapping's key waiting for its value
    key_line: int = 0
    seen: dict[str, int] = field(default_factory=dict)  # raw scalar key -> first line


class _Builder:
    def __init__(self, loader: Loader) -> None:
        self.loader = loader
        self.root: Any = None
        self.duplicates: list[tuple[int, str]] = []
        self.stack: list[_Open] = []
        # anchor -> (value, line of the anchored value, its text when it is a scalar)
        self.anchors: dict[str, tuple[Any, int, str | None]] = {}
        self.documents = 0

    def feed(self, event: Any) -> None:
        kind = type(event)
        if kind is yaml.ScalarEvent:
            self._scalar(event)
        elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            mapping = kind is yaml.MappingStartEvent
            if event.tag not in (*_PLAIN_TAGS, _MAP if mapping else _SEQ):
                raise _Unusual
            made = LineMap() if mapping else LineList()
            made.line = event.start_mark.line + 1
            self._place(made, made.line, None, event.anchor)
            self.stack.append(_Open(made))
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            self.stack.pop()
        elif kind is yaml.AliasEvent:
            if event.anchor not in self.anchors:
                raise _Unusual  # PyYAML names the undefined alias
            value, line, text = self.anchors[event.anchor]
            self._place(value, line, text, None)
        elif kind is yaml.DocumentStartEvent:
            self.documents += 1
            if self.documents > 1:
                raise _Unusual  # PyYAML says it expected a single document

    def _scalar(self, event: Any) -> None:
        tag = event.tag
        if tag in _PLAIN_TAGS:
            tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == _STR:
            value: Any = event.value
        elif tag.endswith((":merge", ":value")):
            raise _Unusual
        else:  # numbers, booleans, null, dates: PyYAML's own constructors
            value = self.loader.construct_object(
                yaml.ScalarNode(
                    tag, event.value, event.start_mark, event.end_mark, style=event.style
                )
            )
        self._place(value, event.start_mark.line + 1, event.value, event.anchor)

    def _place(self, value: Any, line: int, text: str | None, anchor: str | None) -> None:
        if anchor:
            self.anchors[anchor] = (value, line, text)
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        if isinstance(top.value, LineList):
            top.value.append(value)
            top.value.lines.append(line)
        elif top.key is _NO_KEY:
            if isinstance(value, LineMap | LineList):
                raise _Unusual  # PyYAML refuses it: "found unhashable key"
            if text is not None:
                if text in top.seen:
                    first = top.seen[text]
                    self.duplicates.append(
                        (
                            line,
                            f"{text!r} appears twice in one mapping"
                            + (f" (first at line {first})" if first != line else ""),
                        )
                    )
                top.seen.setdefault(text, line)
            top.key, top.key_line = value, line
        else:
            top.value[top.key] = value
            top.value.lines[top.key] = top.key_line
            top.key = _NO_KEY
