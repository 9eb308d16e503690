"""Slack modals, and the Block Kit pieces they share with the messages in cards.slack and
cards.slack_digest.

Import the public names from cards.slack, which re-exports them; this module exists so that
neither file grows past one screenful of concepts. It imports nothing from cards.slack.

Safety rule for every renderer: user text enters Block Kit only through `esc()` (mrkdwn,
escaped, `verbatim` so Slack does no auto-linking either) or `plain()` (plain_text, which Slack
never parses for mentions or links). Both shorten to Slack's limit with "…".
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from cards.views import FormView, RequestView, RoleLine, compact_duration, when
from vocab.limits import MAX_JUSTIFICATION

Block = dict[str, Any]

ACTIVATION_MODAL = "pim_activation_modal"
DECISION_MODAL = "pim_decision_modal"
# Input block ids equal the field names, so {field: message} is already a modal errors map.
ROLE_BLOCK, ROLE_ACTION = "role", "pim_role"
DURATION_BLOCK, DURATION_ACTION = "duration", "pim_duration"
JUSTIFICATION_BLOCK, JUSTIFICATION_ACTION = "justification", "pim_justification"
TICKET_BLOCK, TICKET_ACTION = "ticket", "pim_ticket"
REASON_BLOCK, REASON_ACTION = "reason", "pim_reason"

# Block Kit limits (https://docs.slack.dev/reference/block-kit).
MESSAGE_BLOCKS, VIEW_BLOCKS = 50, 100
SECTION_TEXT, FIELD_TEXT, HEADER_TEXT = 3000, 2000, 150
BUTTON_TEXT, OPTION_TEXT, VIEW_TITLE = 75, 75, 24
SELECT_OPTIONS = 100

_PARTIAL_TAIL = re.compile(r"(&[a-z]*|<[^>]*)$")


def escape(text: str) -> str:
    """Escape mrkdwn control characters, so `<!channel>` in user text is shown, not executed."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(markup: str, limit: int) -> str:
    """Shorten mrkdwn to `limit` characters, never cutting an `&amp;` or a `<!date…>` in two."""
    if len(markup) <= limit:
        return markup
    return _PARTIAL_TAIL.sub("", markup[: limit - 1]) + "…"


def esc(text: str | None, limit: int = SECTION_TEXT) -> str:
    """User text, escaped for mrkdwn and shortened to `limit` characters."""
    return clip(escape(text or ""), limit)


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _instant(iso: str) -> datetime:
    at = datetime.fromisoformat(iso)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def slack_date(iso: str | None) -> str:
    """A time Slack shows in the reader's own time zone; the UTC text is the fallback."""
    if not iso:
        return "—"
    stamp = int(_instant(iso).timestamp())
    return f"<!date^{stamp}^{{date_short_pretty}} at {{time}}|{when(iso)}>"


def mrkdwn(text: str, limit: int = SECTION_TEXT) -> Block:
    return {"type": "mrkdwn", "text": clip(text, limit) or " ", "verbatim": True}


def plain(text: str, limit: int) -> Block:
    return {"type": "plain_text", "text": shorten(text, limit) or " ", "emoji": True}


def section(text: str, *, block_id: str | None = None, accessory: Block | None = None) -> Block:
    block: Block = {"type": "section", "text": mrkdwn(text)}
    if block_id:
        block["block_id"] = block_id[:255]
    if accessory:
        block["accessory"] = accessory
    return block


def context(text: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(text)]}


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text, HEADER_TEXT)}


def button(
    text: str, action_id: str, value: str, *, style: str | None = None, confirm: Block | None = None
) -> Block:
    element: Block = {
        "type": "button",
        "text": plain(text, BUTTON_TEXT),
        "action_id": action_id,
        "value": value[:2000],
    }
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def actions(block_id: str, *elements: Block) -> Block:
    return {"type": "actions", "block_id": block_id[:255], "elements": list(elements)}


def message(fallback: str, blocks: list[Block]) -> Block:
    """A chat.postMessage body: the notification fallback text and at most 50 blocks."""
    return {"text": clip(fallback, SECTION_TEXT), "blocks": blocks[:MESSAGE_BLOCKS]}


def _starts(req: RequestView) -> str:
    immediate = _instant(req.start_at) <= _instant(req.created_at)
    return "Right away" if immediate else slack_date(req.start_at)


def request_blocks(req: RequestView) -> list[Block]:
    """What an approver needs to decide: who, what, how long, from when, why, until when."""
    fields = [
        f"*Requester*\n{esc(req.requester.name, 500)} ({esc(req.requester.email, 500)})",
        f"*Role*\n{esc(req.role.name, 500)}",
        f"*Duration*\n{compact_duration(req.duration_seconds)}",
        f"*Starts*\n{_starts(req)}",
    ]
    if req.ticket:
        fields.append(f"*Ticket*\n{esc(req.ticket, 500)}")
    if req.pending and req.deadline:
        fields.append(f"*Decide by*\n{slack_date(req.deadline)}")
    blocks: list[Block] = [{"type": "section", "fields": [mrkdwn(f, FIELD_TEXT) for f in fields]}]
    if req.justification:
        blocks.append(section(f"*Justification*\n{esc(req.justification, SECTION_TEXT - 20)}"))
    blocks.append(context(f"Request `{esc(req.id, 100)}` · asked {slack_date(req.created_at)}"))
    return blocks


def _modal(
    callback_id: str,
    title: str,
    blocks: list[Block],
    *,
    submit: str | None,
    close: str = "Cancel",
    private_metadata: str = "",
) -> Block:
    view: Block = {
        "type": "modal",
        "callback_id": callback_id,
        "title": plain(title, VIEW_TITLE),
        "close": plain(close, VIEW_TITLE),
        "blocks": blocks[:VIEW_BLOCKS],
    }
    if submit:
        view["submit"] = plain(submit, VIEW_TITLE)
    if private_metadata:
        view["private_metadata"] = private_metadata
    return view


def _input(
    block_id: str, label: str, element: Block, *, optional: bool, hint: str | None = None
) -> Block:
    block: Block = {
        "type": "input",
        "block_id": block_id,
        "label": plain(label, 2000),
        "element": element,
        "optional": optional,
    }
    if hint:
        block["hint"] = plain(hint, 2000)
    return block


def _text_input(
    action_id: str,
    placeholder: str,
    *,
    multiline: bool = False,
    max_length: int | None = None,
    initial: str | None = None,
) -> Block:
    element: Block = {
        "type": "plain_text_input",
        "action_id": action_id,
        "placeholder": plain(placeholder, 150),
    }
    if initial:
        element["initial_value"] = initial[: max_length or 3000]
    if multiline:
        element["multiline"] = True
    if max_length:
        element["max_length"] = max_length
    return element


def role_option(line: RoleLine) -> Block:
    """`Global Administrator · max 8h · needs approval`, shortened to fit 75 characters."""
    rules = f" · max {compact_duration(line.max_duration_seconds)}"
    rules += " · needs approval" if line.requires_approval else ""
    option: Block = {
        "text": plain(shorten(line.role.name, OPTION_TEXT - len(rules)) + rules, OPTION_TEXT),
        "value": line.role.id,
    }
    if line.active_until:
        state = (
            "active now"
            if line.active_until == "permanent"
            else f"active until {when(line.active_until)}"
        )
        option["description"] = plain(state, OPTION_TEXT)
    elif line.pending_request:
        option["description"] = plain(f"pending: {line.pending_request}", OPTION_TEXT)
    return option


def activation_modal(
    form: FormView,
    *,
    selected_role: str | None = None,
    private_metadata: str = "",
    justification: str | None = None,
) -> Block:
    """The `/pim activate` form. Which fields a role requires is checked by the engine on
    submit; its refusals come back inline through `modal_errors`."""
    if not form.roles:
        blocks = [section("You are not eligible for any role. An admin can make you eligible.")]
        return _modal(
            ACTIVATION_MODAL,
            "Activate a role",
            blocks,
            submit=None,
            close="Close",
            private_metadata=private_metadata,
        )
    options = [role_option(line) for line in form.roles[:SELECT_OPTIONS]]
    select: Block = {
        "type": "static_select",
        "action_id": ROLE_ACTION,
        "placeholder": plain("Choose a role", 150),
        "options": options,
    }
    chosen = [o for o in options if o["value"] == selected_role]
    # Slack checks a non-optional input itself: required when the chosen role (or, with no
    # role chosen, every role) requires it. The engine checks again on submit.
    lines = [line for line in form.roles if line.role.id == selected_role] or list(form.roles)
    needs_why = all(line.requires_justification for line in lines)
    needs_ticket = all(line.requires_ticket for line in lines)
    if chosen:
        select["initial_option"] = chosen[0]
    blocks = [
        _input(ROLE_BLOCK, "Role", select, optional=False),
        _input(
            DURATION_BLOCK,
            "Duration",
            _text_input(DURATION_ACTION, "1h, 90m, 2h30m"),
            optional=True,
            hint="Leave empty for the role's default duration.",
        ),
        _input(
            JUSTIFICATION_BLOCK,
            "Justification",
            _text_input(
                JUSTIFICATION_ACTION,
                "Why do you need this role now?",
                multiline=True,
                max_length=MAX_JUSTIFICATION,
                initial=justification,
            ),
            optional=not needs_why,
            hint="Most roles require one; approvers will read it.",
        ),
        _input(
            TICKET_BLOCK,
            "Ticket",
            _text_input(TICKET_ACTION, "INC0012345 or jira:OPS-12"),
            optional=not needs_ticket,
        ),
    ]
    return _modal(
        ACTIVATION_MODAL,
        "Activate a role",
        blocks,
        submit="Request",
        private_metadata=private_metadata,
    )


def decision_modal(req: RequestView, *, approve: bool) -> Block:
    """Asks the approver for a reason; private_metadata says which request and which way."""
    verb = "Approve" if approve else "Deny"
    ask = f"{verb} *{esc(req.requester.name, 500)}*'s request for *{esc(req.role.name, 500)}*?"
    placeholder = "Why is this access fine?" if approve else "Why are you denying it?"
    reason = _input(
        REASON_BLOCK,
        "Reason",
        _text_input(REASON_ACTION, placeholder, multiline=True, max_length=MAX_JUSTIFICATION),
        optional=False,
        hint=f"{req.requester.name} will see this reason.",
    )
    meta = json.dumps({"request": req.id, "approve": approve})
    return _modal(
        DECISION_MODAL,
        f"{verb} request",
        [section(ask), *request_blocks(req), reason],
        submit=verb,
        private_metadata=meta,
    )


def modal_errors(field_errors: dict[str, str]) -> Block:
    """The `ack()` body that shows each message under its input (keys: block ids)."""
    return {
        "response_action": "errors",
        "errors": {block: shorten(message, 2000) for block, message in field_errors.items()},
    }
