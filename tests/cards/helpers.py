"""Checkers shared by the card tests: Slack's Block Kit validators and limits, and a strict
structural checker for the part of Adaptive Card schema 1.4 that Teams cards use."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from typing import Any

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from cards import teams
from cards import views as v

markdown_it: Any
try:
    import markdown_it
except ImportError:  # pragma: no cover - markdown-it-py comes with import-linter's rich
    markdown_it = None

Card = dict[str, Any]


# --- Slack: validation helpers ----------------------------------------------------------------------


def strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from strings(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from strings(value)


def mrkdwn_texts(obj: Any) -> Iterator[str]:
    if isinstance(obj, dict):
        if obj.get("type") == "mrkdwn":
            yield obj["text"]
        for value in obj.values():
            yield from mrkdwn_texts(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from mrkdwn_texts(value)


def check_safe(surface: dict[str, Any]) -> None:
    """The only `<…>` markup Slack gets from us is a date; user text is always escaped."""
    for text in [*mrkdwn_texts(surface), surface.get("text", "")]:
        for token in re.findall(r"<[^>]*>?", text):
            assert token.startswith("<!date^") and token.endswith(">"), token
        assert not re.search(r"&(?!amp;|lt;|gt;)", text), text


def check_blocks(blocks: list[dict[str, Any]], limit: int) -> None:
    assert 0 < len(blocks) <= limit
    block_ids = [b["block_id"] for b in blocks if "block_id" in b]
    assert len(block_ids) == len(set(block_ids)), block_ids
    for block in blocks:
        # to_dict() runs the validators; equality proves no field was silently dropped.
        assert Block.parse(block).to_dict() == block
        elements = [*block.get("elements", []), block.get("accessory") or {}]
        action_ids = [e["action_id"] for e in elements if "action_id" in e]
        assert len(action_ids) == len(set(action_ids))
        assert len(block.get("elements", [])) <= 25


def check_message(message: dict[str, Any]) -> dict[str, Any]:
    assert set(message) == {"text", "blocks"}
    assert message["text"].strip()
    check_blocks(message["blocks"], 50)
    check_safe(message)
    return message


def check_view(view: dict[str, Any]) -> dict[str, Any]:
    View(**view).to_dict()
    check_blocks(view["blocks"], 100)
    check_safe(view)
    return view


def actions_of(surface: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for block in surface["blocks"]:
        found += [e for e in block.get("elements", []) if e.get("type") == "button"]
        if (block.get("accessory") or {}).get("type") == "button":
            found.append(block["accessory"])
    return found


def shown(surface: dict[str, Any]) -> str:
    return "\n".join(strings(surface))


# --- Teams: a strict structural checker for the part of schema 1.4 we use -------------------------------

_COMMON = {"type", "id", "isVisible", "separator", "spacing", "height", "fallback", "requires"}
_INPUT = _COMMON | {"label", "isRequired", "errorMessage"}
_ACTION = {"type", "id", "title", "iconUrl", "style", "fallback", "requires"}
ELEMENTS = {
    "TextBlock": _COMMON
    | {
        "text",
        "color",
        "fontType",
        "horizontalAlignment",
        "isSubtle",
        "maxLines",
        "size",
        "weight",
        "wrap",
    },
    "RichTextBlock": _COMMON | {"inlines", "horizontalAlignment"},
    "FactSet": _COMMON | {"facts"},
    "Container": _COMMON
    | {
        "items",
        "selectAction",
        "style",
        "verticalContentAlignment",
        "bleed",
        "backgroundImage",
        "minHeight",
    },
    "ActionSet": _COMMON | {"actions"},
    "Input.Text": _INPUT
    | {"isMultiline", "maxLength", "placeholder", "regex", "style", "inlineAction", "value"},
    "Input.ChoiceSet": _INPUT
    | {"choices", "isMultiSelect", "style", "value", "placeholder", "wrap"},
}
ACTIONS = {
    "Action.Execute": _ACTION | {"verb", "data", "associatedInputs"},
    "Action.ShowCard": _ACTION | {"card"},
}
TEXT_RUN = {
    "type",
    "text",
    "color",
    "fontType",
    "highlight",
    "isSubtle",
    "italic",
    "selectAction",
    "size",
    "strikethrough",
    "underline",
    "weight",
}
CARD = {
    "type",
    "version",
    "$schema",
    "body",
    "actions",
    "fallbackText",
    "speak",
    "lang",
    "minHeight",
    "selectAction",
    "verticalContentAlignment",
    "backgroundImage",
}
ENUMS = {
    "size": {"default", "small", "medium", "large", "extraLarge"},
    "weight": {"default", "lighter", "bolder"},
    "color": {"default", "dark", "light", "accent", "good", "warning", "attention"},
    "spacing": {"default", "none", "small", "medium", "large", "extraLarge", "padding"},
    "fontType": {"default", "monospace"},
}
ACTION_STYLES = {"default", "positive", "destructive"}
REQUEST_VERBS = {v.APPROVE, v.DENY, v.CANCEL}
ROLE_VERBS = {v.ACTIVATE, v.DEACTIVATE, v.REQUEST_AGAIN, v.EXTEND}
REVIEW_VERBS = set(v.REVIEW_VERBS)
MARKUP = re.compile(r"<(a|em|strong|code|img|h\d|ul|ol|li|blockquote|del|s|table|hr|pre|b)\b")
TEAMS_LIMIT = 28_000


class Walk:
    """Everything a card holds, gathered while checking it."""

    def __init__(self) -> None:
        self.inputs: list[dict[str, Any]] = []
        self.executes: list[dict[str, Any]] = []
        self.markdown: list[str] = []  # text Teams parses as markdown
        self.runs: list[str] = []  # text it shows as is


def _keys(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = set(obj) - allowed
    assert not extra, f"{where}: not in schema 1.4: {sorted(extra)}"
    for prop, values in ENUMS.items():
        if prop in obj:
            assert obj[prop] in values, f"{where}.{prop}={obj[prop]!r}"


def _element(el: dict[str, Any], walk: Walk) -> None:
    kind = el.get("type")
    assert kind in ELEMENTS, f"unknown element type {kind!r}"
    _keys(el, ELEMENTS[kind], kind)
    if kind == "TextBlock":
        assert isinstance(el["text"], str) and el["text"].strip()
        walk.markdown.append(el["text"])
    elif kind == "RichTextBlock":
        assert el["inlines"]
        for inline in el["inlines"]:
            assert inline["type"] == "TextRun"
            _keys(inline, TEXT_RUN, "TextRun")
            walk.runs.append(inline["text"])
    elif kind == "FactSet":
        assert el["facts"]
        for fact in el["facts"]:
            assert set(fact) == {"title", "value"} and fact["title"] and fact["value"]
            walk.markdown += [fact["title"], fact["value"]]
    elif kind == "Container":
        assert el["items"]
        for item in el["items"]:
            _element(item, walk)
    elif kind == "ActionSet":
        assert el["actions"]
        for action in el["actions"]:
            _action(action, walk)
    else:  # an input
        assert isinstance(el["id"], str) and el["id"]
        assert el.get("label")
        walk.inputs.append(el)
        if kind == "Input.ChoiceSet":
            assert el["style"] in {"compact", "expanded"}
            for choice in el["choices"]:
                assert set(choice) == {"title", "value"} and "," not in choice["value"]
            if "value" in el:
                assert el["value"] in {c["value"] for c in el["choices"]}


def _action(action: dict[str, Any], walk: Walk) -> None:
    kind = action.get("type")
    assert kind in ACTIONS, f"unknown action type {kind!r}"
    _keys(action, ACTIONS[kind], kind)
    assert action.get("title")
    if "style" in action:
        assert action["style"] in ACTION_STYLES
    if kind == "Action.ShowCard":
        _card(action["card"], walk, top=False)
        return
    walk.executes.append(action)
    verb, data = action["verb"], action["data"]
    assert isinstance(data, dict) and all(isinstance(x, str) and x for x in data.values())
    if verb in REQUEST_VERBS:
        # approve/deny on an approvals list also carry the ids it shows, to redraw it
        assert set(data) in ({"request"}, {"request", "shown"}), action
        if "shown" in data:
            assert verb in ("pim_approve", "pim_deny"), action
            assert data["request"] in data["shown"].split(","), action
    elif verb in ROLE_VERBS:
        assert set(data) == {"role"}, action
    elif verb in REVIEW_VERBS:
        assert set(data) == {"item"} and data["item"].isdigit(), action
    else:
        assert verb == teams.SUBMIT_ACTIVATION and data == {}, action


def _card(card: Card, walk: Walk, *, top: bool) -> None:
    _keys(card, CARD, "AdaptiveCard")
    assert card["type"] == "AdaptiveCard"
    if top:
        assert card["version"] == "1.4"
        assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert card["body"]
    for element in card["body"]:
        _element(element, walk)
    for action in card.get("actions", []):
        _action(action, walk)


def check_card(card: Card) -> Card:
    """Schema 1.4 structure, unique input ids, data keys that inputs cannot overwrite,
    no markdown from user text, no live {{DATE()}}, within Teams' size limit."""
    walk = Walk()
    _card(card, walk, top=True)
    ids = [i["id"] for i in walk.inputs]
    assert len(ids) == len(set(ids)), ids
    for action in walk.executes:
        assert not set(action["data"]) & set(ids), "an input would overwrite the action's data"
    for text in walk.markdown:
        assert MARKUP.search(markdown_html(text)) is None, text
    for text in walk.markdown + walk.runs:  # input values are never formatted
        assert "{{" not in text, text
    assert len(json.dumps(card)) < TEAMS_LIMIT
    json.loads(json.dumps(card))  # JSON-ready
    return card


def markdown_html(text: str) -> str:
    """What a CommonMark renderer (as in Teams and the JS renderer) makes of TextBlock text."""
    if markdown_it is None:  # pragma: no cover
        return html.escape(text.replace("\\", ""))
    return markdown_it.MarkdownIt("commonmark").enable(["strikethrough", "table"]).render(text)


def walk_of(card: Card) -> Walk:
    walk = Walk()
    _card(card, walk, top=True)
    return walk


def executes(card: Card) -> list[tuple[str, dict[str, str]]]:
    return [(a["verb"], a["data"]) for a in walk_of(card).executes]


def click(
    card: Card, verb: str, typed: dict[str, str], data: dict[str, str] | None = None
) -> dict[str, Any]:
    """What Teams sends in the invoke: the action's data with every input's value merged."""
    action = next(
        a
        for a in walk_of(card).executes
        if a["verb"] == verb and (data is None or a["data"] == data)
    )
    values = {i["id"]: typed.get(i["id"], i.get("value", "")) for i in walk_of(card).inputs}
    return {"verb": action["verb"], "data": {**action["data"], **values}}


def literal_shown(card: Card, text: str) -> bool:
    """User text appears as is in a TextRun (with `{{` broken by a zero-width space)."""
    return re.sub(r"\{(?=\{)", "{\u200b", text) in walk_of(card).runs
