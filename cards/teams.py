"""Teams Adaptive Cards (schema 1.4): view data from cards.views in, JSON-ready dicts out.

Public API (pure functions; nothing here talks to Teams or imports botbuilder):

    notification_card(note) -> dict           the card a notification becomes (kinds DIGEST
                                              and ALERT: digest_card, alert_card, from
                                              cards.teams_digest)
    request_update_card(note) -> dict         the same; name for redrawing a posted card
    reply_card(view) -> dict                  the answer to a typed command, for any view
    activation_form(form, *, selected_role=None, errors=None, values=None) -> dict
    escape(text) -> str                       markdown-escape user text for TextBlock/Fact

    SUBMIT_ACTIVATION                         verb of the form's Request button
    ROLE_INPUT, DURATION_INPUT, JUSTIFICATION_INPUT, TICKET_INPUT, REASON_INPUT  input ids

Buttons are `Action.Execute` with the verbs of cards.views (APPROVE, DENY, CANCEL with
`data={"request": id}`; ACTIVATE, DEACTIVATE, REQUEST_AGAIN with `data={"role": id}`).
Teams merges the card's inputs into `data`, so an Approve/Deny click arrives as
`{"request": "R-7K2Q", "reason": "…"}` and the form as `{"role", "duration", "justification",
"ticket"}`. Lists stay under CARD_BUDGET bytes of JSON; what does not fit is counted.
"""

from __future__ import annotations

from functools import singledispatch

from cards import views as v
from cards.teams_digest import alert_card, digest_card
from cards.teams_forms import (
    CARD_BUDGET,
    DURATION_INPUT,
    FACT_MAX,
    JUSTIFICATION_INPUT,
    REASON_INPUT,
    ROLE_INPUT,
    SUBMIT_ACTIVATION,
    TICKET_INPUT,
    Element,
    action_set,
    activation_form,
    card,
    esc,
    escape,
    execute,
    facts,
    fit,
    heading,
    hint,
    literal,
    request_elements,
    rich,
    run,
    size,
    text_block,
    text_input,
)
from cards.teams_reviews import review_card, review_reason_input, reviews_card
from cards.views import (
    AuditView,
    FormView,
    Notification,
    Reply,
    RequestListView,
    RequestView,
    RoleLine,
    RolesView,
    compact_duration,
    when,
)
from vocab.limits import MAX_JUSTIFICATION
from vocab.states import MemberType

__all__ = [
    "DURATION_INPUT",
    "JUSTIFICATION_INPUT",
    "REASON_INPUT",
    "ROLE_INPUT",
    "SUBMIT_ACTIVATION",
    "SHOWN_INPUT",
    "TICKET_INPUT",
    "activation_form",
    "alert_card",
    "approval_card",
    "digest_card",
    "escape",
    "notification_card",
    "reply_card",
    "request_list_card",
    "request_update_card",
    "review_reason_input",
]

_KIND_EMOJI = v.KIND_EMOJI
_OUTCOME = v.OUTCOME


def _request(req: RequestView) -> dict[str, str]:
    return {"request": req.id}


def _role(role_id: str) -> dict[str, str]:
    return {"role": role_id}


# --- notifications ------------------------------------------------------------------------------


def notification_card(note: Notification) -> Element:
    """The card a notification becomes; a decided request always shows its outcome."""
    if note.kind == v.DIGEST and note.digest is not None:
        return digest_card(note.digest, note.headline)
    if note.kind == v.ALERT:
        return alert_card(note)
    if note.review is not None:
        return review_card(note.review, note.headline)
    req = note.request
    if req is not None and (
        note.kind == v.REQUEST_UPDATE
        or (note.kind in (v.APPROVAL_NEEDED, v.SUBMITTED) and not req.pending)
    ):
        return _decided_card(req)
    if req is not None and note.kind == v.APPROVAL_NEEDED:
        return _pending_card(note, req)
    body = [literal(f"{_KIND_EMOJI.get(note.kind, '🔔')} {note.headline}", weight="bolder")]
    actions: list[Element] = []
    if req is not None and note.kind == v.SUBMITTED:
        body += request_elements(req)
        actions.append(execute("Cancel request", v.CANCEL, _request(req)))
    else:
        body += _note_context(note)
    if note.kind == v.EXPIRING and note.role is not None:
        actions.append(execute("Extend", v.EXTEND, _role(note.role.id), style="positive"))
    if note.kind == v.RENEWABLE and note.role is not None:
        actions.append(execute("Renew", v.RENEW, _role(note.role.id), style="positive"))
    if note.kind == v.EXPIRED and note.role is not None and req is None:
        actions.append(
            execute("Request again", v.REQUEST_AGAIN, _role(note.role.id), style="positive")
        )
    return card(body, actions)


def request_update_card(note: Notification) -> Element:
    """A posted approval card or submitted message, redrawn after the request ended."""
    return _decided_card(note.request) if note.request else notification_card(note)


def _pending_card(note: Notification, req: RequestView) -> Element:
    return approval_card(req, note.headline)


def approval_card(req: RequestView, headline: str, *, error: str | None = None) -> Element:
    """The approver's card; `error` (an empty reason, say) shows under the reason box."""
    label = "Reason (required)" if req.needs_approver_justification else "Reason (required to deny)"
    # Required for both buttons only when approving needs a reason too; Deny without one
    # is answered on the card (error) rather than by the client.
    required = (
        "Give a reason; the requester will see it." if req.needs_approver_justification else None
    )
    body = [
        heading(f"{_KIND_EMOJI[v.APPROVAL_NEEDED]} Approval needed"),
        literal(headline),
        *request_elements(req),
        text_input(
            REASON_INPUT,
            label,
            f"{req.requester.name} will see this reason.",
            multiline=True,
            max_length=MAX_JUSTIFICATION,
            required=required,
        ),
    ]
    if error:
        body.append(literal(error, 500, color="attention", size="small"))
    return card(
        body,
        [
            execute("Approve", v.APPROVE, _request(req), style="positive"),
            execute("Deny", v.DENY, _request(req), style="destructive"),
        ],
    )


def _outcome(req: RequestView) -> tuple[str, str]:
    return _OUTCOME.get(req.decision.outcome if req.decision else req.status, ("ℹ️", req.status))


def _decided_card(req: RequestView) -> Element:
    emoji, word = _outcome(req)
    return card(
        [
            heading(f"{emoji} Request {escape(word)}"),
            literal(f"{emoji} {req.outcome_line()}"),
            *request_elements(req),
        ]
    )


def _note_context(note: Notification) -> list[Element]:
    bits = [note.request.id] if note.request else []
    if note.role is not None:
        bits.append(note.role.name)
    if note.end_at and note.kind in (v.ACTIVATED, v.EXPIRING, v.ASSIGNED):
        bits.append(f"ends {when(note.end_at)}")
    lines = [" · ".join(bits)] if bits else []
    lines += list(note.details)
    return [literal(line, FACT_MAX, isSubtle=True) for line in lines]


# --- replies to typed commands ------------------------------------------------------------------


@singledispatch
def _card(view: object) -> Element:
    raise TypeError(f"no Teams rendering for {type(view).__name__}")


def reply_card(view: object) -> Element:
    """The answer to a command, for any view the engine returns."""
    return _card(view)


_card.register(Notification, notification_card)
_card.register(v.DigestView, digest_card)
_card.register(v.ReviewsView, reviews_card)


@_card.register
def _form(view: FormView) -> Element:
    return activation_form(view)


@_card.register
def _reply(view: Reply) -> Element:
    if view.ok:
        body = [literal(view.text)]
    else:
        body = [literal(f"✗ {view.text}", color="attention")]
        if view.usage:
            body.append(
                rich(
                    run("Usage: ", isSubtle=True),
                    run(view.usage, isSubtle=True, fontType="monospace"),
                    spacing="small",
                )
            )
    return card(body + (request_elements(view.request) if view.request else []))


@_card.register
def _roles(view: RolesView) -> Element:
    if not view.roles:
        return card([text_block("You have no eligible or active roles.")])
    items = [_role_item(line) for line in view.roles]
    body, left = fit([heading("Your roles")], items)
    if left:
        rest = ", ".join(line.role.name for line in view.roles[-left:])
        body.append(
            literal(
                f"{left} more roles not shown; type activate ROLE for them: {rest}", isSubtle=True
            )
        )
    return card(body)


@_card.register
def _requests(view: RequestListView) -> Element:
    return request_list_card(view)


# Data key of the request ids an approvals card shows, so a click redraws that same list.
SHOWN_INPUT = "shown"
_SHOWN_MAX = 10  # rows a click redraws; on a longer list it answers with that one request


def request_list_card(view: RequestListView, *, error: str | None = None) -> Element:
    """`requests` or `approvals`. An approvals card's buttons carry the ids it lists, so
    deciding one redraws its row and keeps the others in place."""
    if not view.requests:
        return card([literal(view.empty_text)])
    top = [literal(view.title, 500, weight="bolder", size="medium")]
    if view.for_approver and any(r.pending for r in view.requests):
        top.append(
            text_input(
                REASON_INPUT,
                "Reason (required to deny; some roles require it to approve)",
                "Requesters will see this reason.",
                multiline=True,
                max_length=MAX_JUSTIFICATION,
            )
        )
    if error:
        top.append(literal(error, 500, color="attention", size="small"))
    shown = ",".join(r.id for r in view.requests) if len(view.requests) <= _SHOWN_MAX else ""
    body, left = fit(top, [_request_item(req, view.for_approver, shown) for req in view.requests])
    if left:
        body.append(hint(f"{left} more requests not shown."))
    return card(body)


@_card.register
def _audit(view: AuditView) -> Element:
    if not view.events:
        return card([literal(f"{view.title}: no events.")])
    pairs = [
        (
            f"#{e.id} · {when(e.at)}",
            esc(
                f"{e.actor} · {e.action} · {e.target}" + (f" ({e.summary})" if e.summary else ""),
                FACT_MAX,
            ),
        )
        for e in view.events
    ]
    room = CARD_BUDGET - 600  # the title and the closing note
    used = 0
    for title, value in pairs:
        room -= size({"title": title, "value": value})
        if room < 0:
            break
        used += 1
    notes = [f"{len(pairs) - used} more events not shown."] if used < len(pairs) else []
    notes += ["Older events omitted."] if view.truncated else []
    body = [literal(view.title, 500, weight="bolder", size="medium"), facts(pairs[:used])]
    if notes:
        body.append(hint(" ".join(notes) + " Run pim-bot audit export for everything."))
    return card(body)


def _role_item(line: RoleLine) -> Element:
    if line.active_until:
        until = (
            "permanently"
            if line.active_until == "permanent"
            else f"until {when(line.active_until)}"
        )
        state = f"🟢 Active {until}" + (
            " (assigned)" if line.member_type == MemberType.ASSIGNED else ""
        )
    elif line.pending_request:
        state = f"⏳ Pending {line.pending_request}"
    else:
        state = "Eligible" + (f" until {when(line.eligible_until)}" if line.eligible_until else "")
    rules = f"max {compact_duration(line.max_duration_seconds)}"
    rules += " · needs approval" if line.requires_approval else ""
    items = [
        rich(
            run(line.role.name, FACT_MAX, weight="bolder"),
            run(f"  {line.role.id}", 200, isSubtle=True, fontType="monospace"),
        ),
        literal(f"{state} · {rules}", spacing="none"),
    ]
    button = _role_button(line)
    if button:
        items.append(action_set(button))
    return {"type": "Container", "separator": True, "items": items}


def _role_button(line: RoleLine) -> Element | None:
    if line.active_until:
        if line.member_type != MemberType.ACTIVATED:
            return None  # an admin's assignment is removed by an admin, not deactivated
        confirm = card(
            [literal(f"Your {line.role.name} access ends now.", FACT_MAX)],
            [execute("Deactivate now", v.DEACTIVATE, _role(line.role.id), style="destructive")],
        )
        del confirm["$schema"], confirm["version"]  # a ShowCard's card takes neither
        return {"type": "Action.ShowCard", "title": "Deactivate", "card": confirm}
    if line.pending_request:
        return None
    return execute("Activate", v.ACTIVATE, _role(line.role.id), style="positive")


def _request_item(req: RequestView, for_approver: bool, shown: str = "") -> Element:
    first = rich(
        run(req.id, 100, weight="bolder", fontType="monospace"),
        run(" · "),
        run(req.role.name, FACT_MAX, weight="bolder"),
        run(f" · {compact_duration(req.duration_seconds)} from {when(req.start_at)}"),
    )
    second = req.requester.name + (f" · ticket {req.ticket}" if req.ticket else "")
    if req.pending and req.deadline:
        second += f" · decide by {when(req.deadline)}"
    items = [first, literal(second, 1000, isSubtle=True, spacing="none")]
    if req.justification:
        items.append(rich(run("Why: ", italic=True), run(req.justification, 1500), spacing="small"))
    if not req.pending:
        items.append(literal(f"{_outcome(req)[0]} {req.outcome_line()}", spacing="small"))
    elif for_approver:
        data = _request(req) | ({SHOWN_INPUT: shown} if shown else {})
        items.append(
            action_set(
                execute("Approve", v.APPROVE, data, style="positive"),
                execute("Deny", v.DENY, data, style="destructive"),
            )
        )
    else:
        items.append(action_set(execute("Cancel", v.CANCEL, _request(req))))
    return {"type": "Container", "separator": True, "items": items}
