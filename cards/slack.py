"""Slack Block Kit renderers: view data from cards.views in, JSON-ready dicts out.

Public API (pure functions; nothing here talks to Slack):

    escape(text) -> str                       mrkdwn-escape user text (& < >)
    notification_message(note) -> dict        {"text", "blocks"} for chat.postMessage/update
                                              (kinds DIGEST and ALERT: digest_message,
                                              alert_message, from cards.slack_digest)
    request_update_message(note) -> dict      the same; name for redrawing a posted card
    reply_message(view) -> dict               {"text", "blocks"}, the answer to /pim
    home_view(roles, mine, approvals) -> dict a `home` view for views.publish
    activation_modal(form, *, selected_role=None, private_metadata="") -> dict
    decision_modal(req, *, approve) -> dict   asks an approver for a reason
    modal_errors(field_errors) -> dict        ack() body: errors shown under each input

    ACTIVATION_MODAL, DECISION_MODAL          callback_id of the two modals
    ROLE_BLOCK/ROLE_ACTION, DURATION_BLOCK/DURATION_ACTION, JUSTIFICATION_BLOCK/
    JUSTIFICATION_ACTION, TICKET_BLOCK/TICKET_ACTION, REASON_BLOCK/REASON_ACTION

Buttons use the action ids of cards.views (APPROVE, DENY, CANCEL with the request id as value;
ACTIVATE, DEACTIVATE, REQUEST_AGAIN with the role id). Each item's buttons sit in their own
block, block_id `req:<request id>` or `role:<role id>` (App Home prefixes `home_…`), so the
action ids stay the plain constants. Messages keep to 50 blocks and views to 100; what does not
fit is counted in a closing line.
"""

from __future__ import annotations

from functools import singledispatch

from cards import text as plain_text
from cards import views as v
from cards.slack_digest import alert_message, digest_message
from cards.slack_modals import (
    ACTIVATION_MODAL,
    DECISION_MODAL,
    DURATION_ACTION,
    DURATION_BLOCK,
    JUSTIFICATION_ACTION,
    JUSTIFICATION_BLOCK,
    MESSAGE_BLOCKS,
    REASON_ACTION,
    REASON_BLOCK,
    ROLE_ACTION,
    ROLE_BLOCK,
    SECTION_TEXT,
    TICKET_ACTION,
    TICKET_BLOCK,
    VIEW_BLOCKS,
    Block,
    actions,
    activation_modal,
    button,
    context,
    decision_modal,
    esc,
    escape,
    header,
    message,
    modal_errors,
    request_blocks,
    section,
    slack_date,
)
from cards.slack_reviews import (
    DECISION_OF,
    REVIEW_MODAL,
    REVIEW_REASON_ACTION,
    REVIEW_REASON_BLOCK,
    review_blocks,
    review_message,
    review_modal,
)
from cards.views import (
    AuditView,
    FormView,
    Notification,
    Reply,
    RequestListView,
    RequestView,
    ReviewsView,
    RoleLine,
    RolesView,
    compact_duration,
    when,
)
from vocab.states import MemberType

__all__ = [
    "ACTIVATION_MODAL",
    "DECISION_MODAL",
    "DURATION_ACTION",
    "DURATION_BLOCK",
    "JUSTIFICATION_ACTION",
    "JUSTIFICATION_BLOCK",
    "REASON_ACTION",
    "REASON_BLOCK",
    "DECISION_OF",
    "REVIEW_MODAL",
    "REVIEW_REASON_ACTION",
    "REVIEW_REASON_BLOCK",
    "review_modal",
    "ROLE_ACTION",
    "ROLE_BLOCK",
    "TICKET_ACTION",
    "TICKET_BLOCK",
    "activation_modal",
    "alert_message",
    "decision_modal",
    "digest_message",
    "escape",
    "home_view",
    "modal_errors",
    "notification_message",
    "reply_message",
    "request_update_message",
]

_KIND_EMOJI = v.KIND_EMOJI
_OUTCOME = v.OUTCOME


# --- notifications -------------------------------------------------------------------------


def notification_message(note: Notification) -> Block:
    """The message a notification becomes; a decided request always shows its outcome."""
    if note.kind == v.DIGEST and note.digest is not None:
        return digest_message(note.digest, note.headline)
    if note.kind == v.ALERT:
        return alert_message(note)
    if note.review is not None:
        return review_message(note.review, note.headline)
    req = note.request
    if req is not None and (
        note.kind == v.REQUEST_UPDATE
        or (note.kind in (v.APPROVAL_NEEDED, v.SUBMITTED) and not req.pending)
    ):
        return _decided_card(req)
    emoji = _KIND_EMOJI.get(note.kind, "🔔")
    blocks = [section(f"{emoji} {esc(note.headline)}")]
    if req is not None and note.kind == v.APPROVAL_NEEDED:
        who_asks = "Both buttons ask" if req.needs_approver_justification else "Deny asks"
        blocks = [
            header(f"{emoji} Approval needed"),
            section(esc(note.headline)),
            *request_blocks(req),
            actions(
                f"req:{req.id}",
                button("Approve", v.APPROVE, req.id, style="primary"),
                button("Deny", v.DENY, req.id, style="danger"),
            ),
            context(f"{who_asks} you for a reason."),
        ]
    elif req is not None and note.kind == v.SUBMITTED:
        blocks += [
            *request_blocks(req),
            actions(f"req:{req.id}", button("Cancel request", v.CANCEL, req.id)),
        ]
    else:
        blocks += _note_context(note)
    if note.kind == v.EXPIRING and note.role is not None:
        blocks.append(
            actions(
                f"role:{note.role.id}", button("Extend", v.EXTEND, note.role.id, style="primary")
            )
        )
    if note.kind == v.RENEWABLE and note.role is not None:
        blocks.append(
            actions(f"role:{note.role.id}", button("Renew", v.RENEW, note.role.id, style="primary"))
        )
    if note.kind == v.EXPIRED and note.role is not None and req is None:
        blocks.append(
            actions(
                f"role:{note.role.id}",
                button("Request again", v.REQUEST_AGAIN, note.role.id, style="primary"),
            )
        )
    return message(f"{emoji} {escape(note.headline)}", blocks)


def request_update_message(note: Notification) -> Block:
    """A posted approval card or submitted message, redrawn after the request ended."""
    return _decided_card(note.request) if note.request else notification_message(note)


def _decided_card(req: RequestView) -> Block:
    outcome = req.decision.outcome if req.decision else req.status
    emoji, word = _OUTCOME.get(outcome, ("ℹ️", outcome))
    line = escape(req.outcome_line())
    blocks = [header(f"{emoji} Request {word}"), section(f"{emoji} {line}"), *request_blocks(req)]
    return message(f"{emoji} {req.id} · {escape(req.role.name)}: {line}", blocks)


def _note_context(note: Notification) -> list[Block]:
    bits = [f"`{esc(note.request.id, 100)}`"] if note.request else []
    if note.role is not None:
        bits.append(esc(note.role.name, 500))
    if note.end_at and note.kind in (v.ACTIVATED, v.EXPIRING, v.ASSIGNED):
        bits.append(f"ends {slack_date(note.end_at)}")
    lines = [" · ".join(bits)] if bits else []
    lines += [esc(d, 500) for d in note.details]
    return [context("\n".join(lines))] if lines else []


# --- replies to /pim -----------------------------------------------------------------------


@singledispatch
def _blocks(view: object) -> list[Block]:
    raise TypeError(f"no Slack rendering for {type(view).__name__}")


def reply_message(view: object) -> Block:
    """The ephemeral answer to a slash command, for any view the engine returns."""
    if isinstance(view, Notification):
        return notification_message(view)
    if isinstance(view, v.DigestView):
        return digest_message(view)
    return message(escape(plain_text.render(view)), _blocks(view))


@_blocks.register
def _reply(view: Reply) -> list[Block]:
    if view.ok:
        blocks = [section(esc(view.text))]
    else:
        blocks = [section(f"✗ {esc(view.text)}")]
        if view.usage:
            blocks.append(context(f"Usage: `{esc(view.usage, 2000)}`"))
    return blocks + (request_blocks(view.request) if view.request else [])


@_blocks.register
def _roles(view: RolesView) -> list[Block]:
    if not view.roles:
        return [section("You have no eligible or active roles.")]
    return [section("*Your roles*"), *role_blocks(view.roles, room=MESSAGE_BLOCKS - 1)]


@_blocks.register
def _form(view: FormView) -> list[Block]:
    if not view.roles:
        return [section("You are not eligible for any role.")]
    return [
        section("*Which role do you want to activate?*"),
        *role_blocks(view.roles, room=MESSAGE_BLOCKS - 1),
    ]


@_blocks.register
def _requests(view: RequestListView) -> list[Block]:
    if not view.requests:
        return [section(esc(view.empty_text))]
    return [
        section(f"*{esc(view.title, 500)}*"),
        *request_list_blocks(view, room=MESSAGE_BLOCKS - 1),
    ]


@_blocks.register
def _reviews(view: ReviewsView) -> list[Block]:
    if not view.cards:
        return [section(esc(view.empty_text))]
    blocks: list[Block] = []
    for index, card in enumerate(view.cards):
        room = MESSAGE_BLOCKS - len(blocks) - 1
        if room < 4:
            blocks.append(context(f"{len(view.cards) - index} more reviews not shown."))
            break
        blocks += review_blocks(card, room=room, prefix=f"{index}_")
    return blocks


@_blocks.register
def _audit(view: AuditView) -> list[Block]:
    if not view.events:
        return [section(f"{esc(view.title, 500)}: no events.")]
    lines = [
        f"`#{e.id}` {when(e.at)} · *{esc(e.actor, 200)}* · {esc(e.action, 100)} · "
        f"{esc(e.target, 300)}" + (f" ({esc(e.summary, 300)})" if e.summary else "")
        for e in view.events
    ]
    chunks, used = _pack(lines, room=MESSAGE_BLOCKS - 2)  # leave room for title and note
    notes = [f"{len(lines) - used} more events not shown."] if used < len(lines) else []
    notes += ["Older events omitted."] if view.truncated else []
    blocks = [section(f"*{esc(view.title, 500)}*"), *(section(c) for c in chunks)]
    if notes:
        blocks.append(context(" ".join(notes) + " Use `pim-bot audit export` for everything."))
    return blocks


def _pack(lines: list[str], *, room: int) -> tuple[list[str], int]:
    """Join lines into at most `room` section texts; returns them and how many lines fit."""
    chunks, used = [""], 0
    for line in lines:
        if chunks[-1] and len(chunks[-1]) + 1 + len(line) > SECTION_TEXT:
            if len(chunks) == room:
                break
            chunks.append("")
        chunks[-1] = f"{chunks[-1]}\n{line}" if chunks[-1] else line
        used += 1
    return chunks, used


# --- shared by replies and App Home ---------------------------------------------------------


def _role_text(line: RoleLine) -> str:
    if line.active_until:
        until = (
            "permanently"
            if line.active_until == "permanent"
            else f"until {slack_date(line.active_until)}"
        )
        state = f"🟢 Active {until}" + (
            " (assigned)" if line.member_type == MemberType.ASSIGNED else ""
        )
    elif line.pending_request:
        state = f"⏳ Pending `{esc(line.pending_request, 100)}`"
    else:
        state = "Eligible" + (
            f" until {slack_date(line.eligible_until)}" if line.eligible_until else ""
        )
    rules = f"max {compact_duration(line.max_duration_seconds)}"
    rules += " · needs approval" if line.requires_approval else ""
    return f"*{esc(line.role.name, 500)}*  `{esc(line.role.id, 200)}`\n{state} · {rules}"


def _role_button(line: RoleLine) -> Block | None:
    if line.active_until:
        if line.member_type != MemberType.ACTIVATED:
            return None  # an admin's assignment is removed by an admin, not deactivated
        confirm = {
            "title": {"type": "plain_text", "text": "Deactivate?"},
            "text": {"type": "plain_text", "text": f"Your {line.role.name} access ends now."[:300]},
            "confirm": {"type": "plain_text", "text": "Deactivate"},
            "deny": {"type": "plain_text", "text": "Keep it"},
            "style": "danger",
        }
        return button("Deactivate", v.DEACTIVATE, line.role.id, confirm=confirm)
    if line.pending_request:
        return None
    return button("Activate", v.ACTIVATE, line.role.id, style="primary")


def role_blocks(roles: tuple[RoleLine, ...], *, room: int, prefix: str = "") -> list[Block]:
    """One section per role with its button; past `room` blocks, a line names the rest."""
    fits = roles if len(roles) <= room else roles[: room - 1]
    blocks = [
        section(_role_text(r), block_id=f"{prefix}role:{r.role.id}", accessory=_role_button(r))
        for r in fits
    ]
    if len(fits) < len(roles):
        rest = roles[len(fits) :]
        names = ", ".join(esc(r.role.name, 100) for r in rest)
        blocks.append(
            context(f"{len(rest)} more roles not shown; use `/pim activate ROLE` for them: {names}")
        )
    return blocks


def _request_summary(req: RequestView) -> str:
    first = (
        f"*`{esc(req.id, 100)}`* · *{esc(req.role.name, 300)}* · "
        f"{compact_duration(req.duration_seconds)} from {slack_date(req.start_at)}"
    )
    second = esc(req.requester.name, 300)
    if req.ticket:
        second += f" · ticket {esc(req.ticket, 200)}"
    if req.pending and req.deadline:
        second += f" · decide by {slack_date(req.deadline)}"
    lines = [first, second]
    if req.justification:
        lines.append(f"_Why:_ {esc(req.justification, 1500)}")
    if not req.pending:
        emoji, _ = _OUTCOME.get(req.decision.outcome if req.decision else req.status, ("ℹ️", ""))
        lines.append(f"{emoji} {esc(req.outcome_line(), 600)}")
    return "\n".join(lines)


def request_list_blocks(view: RequestListView, *, room: int, prefix: str = "") -> list[Block]:
    """Each request with its buttons: Approve and Deny for an approver, else Cancel."""
    per = 2 if view.for_approver else 1
    count = len(view.requests)
    fits = view.requests if count * per <= room else view.requests[: (room - 1) // per]
    blocks: list[Block] = []
    for req in fits:
        block_id = f"{prefix}req:{req.id}"
        if view.for_approver:
            blocks += [
                section(_request_summary(req)),
                actions(
                    block_id,
                    button("Approve", v.APPROVE, req.id, style="primary"),
                    button("Deny", v.DENY, req.id, style="danger"),
                ),
            ]
        else:
            blocks.append(
                section(
                    _request_summary(req),
                    block_id=block_id,
                    accessory=button("Cancel", v.CANCEL, req.id),
                )
            )
    if len(fits) < count:
        blocks.append(context(f"{count - len(fits)} more requests not shown."))
    return blocks


# --- App Home --------------------------------------------------------------------------------


def _share(needs: list[int], total: int) -> list[int]:
    """Split `total` blocks between lists: small lists get all they need, big ones the rest."""
    alloc, left = [0] * len(needs), total
    order = sorted(range(len(needs)), key=lambda i: needs[i])
    for done, i in enumerate(order):
        alloc[i] = min(needs[i], left // (len(needs) - done))
        left -= alloc[i]
    return alloc


def home_view(roles: RolesView, mine: RequestListView, approvals: RequestListView) -> Block:
    """App Home: My roles, My requests, Approve requests, within 100 blocks."""
    fixed = 5  # three headers, two dividers
    needs = [
        max(1, len(roles.roles)),
        max(1, len(mine.requests)),
        max(1, len(approvals.requests) * 2),
    ]
    r_room, m_room, a_room = _share(needs, VIEW_BLOCKS - fixed)
    divider: Block = {"type": "divider"}
    blocks = [
        header("My roles"),
        *(
            role_blocks(roles.roles, room=r_room, prefix="home_")
            or [section("You have no eligible or active roles.")]
        ),
        divider,
        header("My requests"),
        *_home_list(mine, m_room, "home_mine_"),
        divider,
        header("Approve requests"),
        *_home_list(approvals, a_room, "home_approve_"),
    ]
    return {"type": "home", "blocks": blocks[:VIEW_BLOCKS]}


def _home_list(view: RequestListView, room: int, prefix: str) -> list[Block]:
    if not view.requests:
        return [section(esc(view.empty_text))]
    return request_list_blocks(view, room=room, prefix=prefix)
