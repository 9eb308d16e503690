"""YAML for policy files: loading that remembers the line of every key and list item, so a
mistake can be reported as `policy.yaml:14: ...`, and dumping that a person can edit."""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from enum import StrEnum
from typing import Any

import yaml

from handlers.policy.limits import ParserBase


def load_with_lines(text: str) -> tuple[Any, list[tuple[int, str]]]:
    """The document (mappings as LineMap, lists as LineList) and any keys written twice.

    Raises yaml.YAMLError for text that is not YAML at all. Check the text against
    handlers.policy.limits first: this builds the whole document, recursively.
    """
    loader = _Loader(text)
    try:
        return loader.get_single_data(), loader.duplicates
    finally:
        loader.dispose()


def dump_yaml(doc: Any) -> str:
    return yaml.dump(
        doc, Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=120, allow_unicode=True
    )


class LineMap(dict[Any, Any]):
    """A mapping that knows its own line and the line of each of its keys (1-based)."""

    def __init__(self) -> None:
        super().__init__()
        self.line = 1
        self.lines: dict[Any, int] = {}


class LineList(list[Any]):
    """A list that knows its own line and the line of each item (1-based)."""

    def __init__(self) -> None:
        super().__init__()
        self.line = 1
        self.lines: list[int] = []


class _Loader(ParserBase):  # type: ignore[misc]
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        # PyYAML silently keeps the last of two equal keys; a policy should not guess.
        self.duplicates: list[tuple[int, str]] = []


_STR = "tag:yaml.org,2002:str"


def _value(loader: _Loader, node: yaml.Node) -> Any:
    # Most of a policy is plain text: its value is the node's, without PyYAML's dispatch
    # (a large file has a million of them).
    if node.tag == _STR and isinstance(node, yaml.ScalarNode):
        return node.value
    return loader.construct_object(node)


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> Iterator[LineMap]:
    data = LineMap()
    data.line = node.start_mark.line + 1
    yield data  # yielded empty first so anchors and aliases can refer to it
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
            continue
        line = key_node.start_mark.line + 1
        if key_node.value in seen:
            first = seen[key_node.value]
            loader.duplicates.append(
                (
                    line,
                    f"{key_node.value!r} appears twice in one mapping"
                    + (f" (first at line {first})" if first != line else ""),
                )
            )
        seen.setdefault(key_node.value, line)
    loader.flatten_mapping(node)  # merge keys (<<: *defaults), as SafeLoader does
    lines = data.lines
    for key_node, value_node in node.value:
        key = _value(loader, key_node)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                "found unhashable key",
                key_node.start_mark,
            )
        data[key] = _value(loader, value_node)
        lines[key] = key_node.start_mark.line + 1


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> Iterator[LineList]:
    data = LineList()
    data.line = node.start_mark.line + 1
    yield data
    data.extend([_value(loader, item) for item in node.value])
    data.lines = [item.start_mark.line + 1 for item in node.value]


def _construct_timestamp(loader: _Loader, node: yaml.ScalarNode) -> Any:
    # 2027-13-01 looks like a timestamp to YAML but is no date; PyYAML would raise a bare
    # ValueError with no line. Kept as text, it reaches the `end` check, which names the line.
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError:
        return loader.construct_scalar(node)


# The loader class, for handlers.policy.yaml_stream: its parser, resolver and constructors.
Loader = _Loader
_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # &id001 anchors would only confuse a person editing the file

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        return super().increase_indent(flow, False)  # "  - item" under its key, as people write


# States (vocab.states) are written as the plain words a person types in the file.
_Dumper.add_multi_representer(StrEnum, lambda dumper, value: dumper.represent_str(str(value)))
