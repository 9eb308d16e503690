"""Adaptive Card pieces for Teams, and the activation form built from them.

Import the public names from cards.teams, which re-exports them; this module exists so that
neither file grows past one screenful of concepts. It imports nothing from cards.teams or
cards.teams_digest, which both build on it.

Everything here keeps to Adaptive Cards schema 1.4 (Teams renders 1.4+; `Action.Execute` is 1.4).

Safety rule for every renderer. Teams parses a markdown subset in `TextBlock.text` and in
`FactSet` titles and values; it never parses `TextRun.text` (RichTextBlock). So:

- text that holds anything a person or an admin typed (justifications, reasons, names in
  headlines, engine messages) goes into a `TextRun` through `rich()`/`run()` and is shown
  literally on every client, with no escape characters to leak;
- a `TextBlock` carries only our own words, with any interpolated value passed through
  `escape()`;
- `FactSet` values always pass through `escape()` (see its docstring for what it escapes).

Both paths also break `{{` so user text cannot call the card's DATE()/TIME() functions, and
both shorten to `TEXT_MAX` characters with "…".
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from cards.views import FormView, RequestView, RoleLine, compact_duration, when
from vocab.limits import MAX_JUSTIFICATION

Element = dict[str, Any]

SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.4"

# Action.Execute verb of the activation form (the other verbs are cards.views' action ids).
SUBMIT_ACTIVATION = "pim_activation_submit"
# Input ids. Teams merges input values into the action's `data`, so they come back as keys
# next to `request` / `role`; no card puts a ROLE_INPUT next to a role action.
ROLE_INPUT = "role"
DURATION_INPUT = "duration"
JUSTIFICATION_INPUT = "justification"
TICKET_INPUT = "ticket"
REASON_INPUT = "reason"
FORM_INPUTS = (ROLE_INPUT, DURATION_INPUT, JUSTIFICATION_INPUT, TICKET_INPUT)

TEXT_MAX = 2000  # longest user text we put on a card
FACT_MAX = 500
CHOICES_MAX = 100
CARD_BUDGET = 24_000  # bytes of JSON; Teams refuses activities over about 28 KB

_BREAK_DATE_FUNCTION = re.compile(r"\{(?=\{)")
_ENTITY = re.compile(r"&(?=#?[0-9A-Za-z]+;)")
_LINE_MARKER = re.compile(r"^([ \t]*)([#>+\-=|]|\d{1,9}(?=[.)]))", re.MULTILINE)
_ALWAYS = frozenset("\\`*~[]<")


def shorten(text: str, limit: int = TEXT_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _inert(text: str) -> str:
    """Put a zero-width space inside `{{` so `{{DATE(…)}}` in user text stays text."""
    return _BREAK_DATE_FUNCTION.sub("{\u200b", text)


def escape(text: str) -> str:
    """Markdown-escape text for a TextBlock or a Fact, so it shows exactly as typed.

    Backslash-escapes (CommonMark) only what can start markup, because some Teams mobile
    clients show the backslashes: `\\ ` * ~ [ ] <` everywhere; `(` right after `]` (so even a
    parser that ignores escapes sees no `](`); `_` unless it sits inside a word; `&` that
    would start an entity; and a leading `# > + - = |` or `1.`/`1)` at the start of a line.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # CommonMark ends lines at \r too
    out: list[str] = []
    for i, ch in enumerate(text):
        if ch in _ALWAYS or (ch == "(" and i and text[i - 1] == "]"):
            out.append("\\" + ch)
        elif ch == "_" and not (
            0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()
        ):
            out.append("\\_")
        else:
            out.append(ch)
    escaped = _ENTITY.sub(r"\\&", "".join(out))
    escaped = _LINE_MARKER.sub(lambda m: m.group(1) + _escape_marker(m.group(2)), escaped)
    return _inert(escaped)


def _escape_marker(marker: str) -> str:
    return marker + "\\" if marker[0].isdigit() else "\\" + marker  # `1\.` / `\#`


def esc(text: str | None, limit: int = TEXT_MAX) -> str:
    """User text for a TextBlock or Fact: shortened, then escaped."""
    return escape(shorten(text or "", limit))


# --- elements ---------------------------------------------------------------------------------


def card(body: list[Element], actions: list[Element] | None = None) -> Element:
    out: Element = {"$schema": SCHEMA, "type": "AdaptiveCard", "version": VERSION, "body": body}
    if actions:
        out["actions"] = actions
    return out


def text_block(text: str, **style: Any) -> Element:
    """Our own words (markdown allowed); interpolate user values only through escape()."""
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def heading(text: str) -> Element:
    return text_block(text, size="medium", weight="bolder")


def hint(text: str) -> Element:
    return text_block(text, isSubtle=True, size="small", spacing="small")


def run(text: str, limit: int = TEXT_MAX, **style: Any) -> Element:
    """A TextRun: never parsed as markdown, so user text goes here as it is."""
    return {"type": "TextRun", "text": _inert(shorten(text, limit)), **style}


def rich(*runs: Element, **props: Any) -> Element:
    return {"type": "RichTextBlock", "inlines": list(runs), **props}


def literal(
    text: str, limit: int = TEXT_MAX, *, spacing: str | None = None, **style: Any
) -> Element:
    """One run of user text, shown exactly as typed; `style` goes to the TextRun."""
    return rich(run(text, limit, **style), **({"spacing": spacing} if spacing else {}))


def facts(pairs: list[tuple[str, str]], **props: Any) -> Element:
    """A FactSet; titles are ours, values must already be escaped."""
    return {"type": "FactSet", "facts": [{"title": t, "value": v} for t, v in pairs], **props}


def execute(title: str, verb: str, data: dict[str, str], *, style: str | None = None) -> Element:
    action: Element = {"type": "Action.Execute", "title": title, "verb": verb, "data": data}
    if style:
        action["style"] = style
    return action


def action_set(*actions: Element, **props: Any) -> Element:
    return {"type": "ActionSet", "actions": list(actions), **props}


def text_input(
    input_id: str,
    label: str,
    placeholder: str,
    *,
    multiline: bool = False,
    max_length: int | None = None,
    value: str | None = None,
    required: str | None = None,
) -> Element:
    """`required`: the message Teams shows, without a round trip, when it is left empty."""
    element: Element = {
        "type": "Input.Text",
        "id": input_id,
        "label": label,
        "placeholder": placeholder,
    }
    if required:
        element |= {"isRequired": True, "errorMessage": required}
    if multiline:
        element["isMultiline"] = True
    if max_length:
        element["maxLength"] = max_length
    if value:
        element["value"] = value[: max_length or TEXT_MAX]
    return element


# --- fitting a card into CARD_BUDGET ----------------------------------------------------------


def size(element: object) -> int:
    """Bytes of JSON the element adds to a card."""
    return len(json.dumps(element))


def fit(head: list[Element], items: list[Element]) -> tuple[list[Element], int]:
    """Head plus as many items as fit the card budget; returns them and how many were left."""
    room = CARD_BUDGET - size(head) - 800  # the card envelope and a closing line
    body = list(head)
    for count, item in enumerate(items):
        room -= size(item)
        if room < 0:
            return body, len(items) - count
        body.append(item)
    return body, 0


# --- a request, as every card shows it --------------------------------------------------------


def _instant(iso: str) -> datetime:
    at = datetime.fromisoformat(iso)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def starts(req: RequestView) -> str:
    return (
        "Right away" if _instant(req.start_at) <= _instant(req.created_at) else when(req.start_at)
    )


def request_elements(req: RequestView) -> list[Element]:
    """What an approver needs to decide: who, what, how long, from when, why, until when."""
    pairs = [
        (
            "Requester",
            f"{esc(req.requester.name, FACT_MAX)} ({esc(req.requester.email, FACT_MAX)})",
        ),
        ("Role", esc(req.role.name, FACT_MAX)),
        ("Duration", compact_duration(req.duration_seconds)),
        ("Starts", starts(req)),
    ]
    if req.ticket:
        pairs.append(("Ticket", esc(req.ticket, FACT_MAX)))
    if req.pending and req.deadline:
        pairs.append(("Decide by", when(req.deadline)))
    elements = [facts(pairs)]
    if req.justification:
        elements += [
            text_block("Justification", weight="bolder", spacing="medium"),
            literal(req.justification, spacing="none"),
        ]
    elements.append(hint(f"Request {esc(req.id, 100)} · asked {when(req.created_at)}"))
    return elements


# --- the activation form ----------------------------------------------------------------------


def role_choice(line: RoleLine) -> Element:
    """`Global Administrator · max 8h · needs approval` (choice titles are plain text)."""
    title = f"{shorten(line.role.name, 100)} · max {compact_duration(line.max_duration_seconds)}"
    title += " · needs approval" if line.requires_approval else ""
    if line.active_until:
        title += (
            " · active now"
            if line.active_until == "permanent"
            else f" · active until {when(line.active_until)}"
        )
    elif line.pending_request:
        title += f" · pending {line.pending_request}"
    return {"title": _inert(title), "value": line.role.id}


def _error(message: str) -> Element:
    return literal(message, 500, color="attention", size="small")


def activation_form(
    form: FormView,
    *,
    selected_role: str | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> Element:
    """The `activate` form. `errors` (input id -> message; form.errors too) show under their
    inputs, any other key at the top; `values` (input id -> text) refill what was typed.
    Which fields a role requires is checked by the engine on submit, not here."""
    if not form.roles:
        return card(
            [text_block("You are not eligible for any role. An admin can make you eligible.")]
        )
    problems = {**form.errors, **(errors or {})}
    typed = values or {}
    choices = [role_choice(line) for line in form.roles[:CHOICES_MAX]]
    chosen = typed.get(ROLE_INPUT) or selected_role
    # Required when the chosen role requires it, or when every role does (the engine checks
    # again on submit: a card cannot know which role will be picked).
    lines = [line for line in form.roles if line.role.id == chosen] or list(form.roles)
    needs_why = all(line.requires_justification for line in lines)
    needs_ticket = all(line.requires_ticket for line in lines)
    select: Element = {
        "type": "Input.ChoiceSet",
        "id": ROLE_INPUT,
        "label": "Role",
        "style": "compact",
        "placeholder": "Choose a role",
        "choices": choices,
    }
    if chosen in {c["value"] for c in choices}:
        select["value"] = chosen
    fields: list[tuple[Element, str | None]] = [
        (
            select,
            None
            if len(form.roles) <= CHOICES_MAX
            else f"{len(form.roles) - CHOICES_MAX} more roles not listed; type activate ROLE for them.",
        ),
        (
            text_input(
                DURATION_INPUT, "Duration", "1h, 90m, 2h30m", value=typed.get(DURATION_INPUT)
            ),
            "Leave empty for the role's default duration.",
        ),
        (
            text_input(
                JUSTIFICATION_INPUT,
                "Justification",
                "Why do you need this role now?",
                multiline=True,
                max_length=MAX_JUSTIFICATION,
                value=typed.get(JUSTIFICATION_INPUT),
                required="Say why you need this role." if needs_why else None,
            ),
            "Most roles require one; approvers will read it.",
        ),
        (
            text_input(
                TICKET_INPUT,
                "Ticket",
                "INC0012345 or jira:OPS-12",
                value=typed.get(TICKET_INPUT),
                required="This role needs a ticket, e.g. INC-123." if needs_ticket else None,
            ),
            None,
        ),
    ]
    body = [heading("Activate a role")]
    body += [_error(msg) for key, msg in problems.items() if key not in FORM_INPUTS]
    for element, help_text in fields:
        body.append(element)
        if element["id"] in problems:
            body.append(_error(problems[element["id"]]))
        if help_text:
            body.append(hint(help_text))
    return card(body, [execute("Request", SUBMIT_ACTIVATION, {}, style="positive")])
