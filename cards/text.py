"""Plain-text rendering of every view, for the console and as the chat fallback text."""

from __future__ import annotations

from functools import singledispatch

from cards.views import (
    APPROVAL_NEEDED,
    EXPIRING,
    SUBMITTED,
    AuditView,
    FormView,
    Notification,
    Reply,
    RequestListView,
    RequestView,
    RolesView,
    compact_duration,
    when,
)


@singledispatch
def render(view: object) -> str:
    raise TypeError(f"no text rendering for {type(view).__name__}")


@render.register
def _reply(view: Reply) -> str:
    if view.ok:
        return view.text
    line = f"✗ {view.text}"
    return f"{line}\n  usage: {view.usage}" if view.usage else line


def request_lines(req: RequestView) -> list[str]:
    lines = [
        f"  Request   {req.id} ({req.status})",
        f"  Who       {req.requester.name} <{req.requester.email}>",
        f"  Role      {req.role.name} ({req.role.id})",
        f"  Duration  {compact_duration(req.duration_seconds)} from {when(req.start_at)}",
    ]
    if req.justification:
        lines.append(f"  Why       {req.justification}")
    if req.ticket:
        lines.append(f"  Ticket    {req.ticket}")
    if req.pending and req.deadline:
        lines.append(f"  Decide by {when(req.deadline)}")
    if req.decision:
        lines.append(f"  Outcome   {req.outcome_line()}")
    return lines


@render.register
def _notification(view: Notification) -> str:
    lines = [f"🔔 {view.headline}"]
    req = view.request
    if view.kind == APPROVAL_NEEDED and req is not None:
        lines += request_lines(req)
        hint = f"approve {req.id} <reason>" if req.needs_approver_justification \
            else f"approve {req.id}"
        lines.append(f"  → {hint}   |   deny {req.id} <reason>")
    elif view.kind == SUBMITTED and req is not None:
        lines.append(f"  → cancel {req.id}")
    elif view.kind == EXPIRING and view.role is not None:
        lines.append(f"  → request again: activate {view.role.id}")
    lines.extend(f"  {d}" for d in view.details)
    return "\n".join(lines)


@render.register
def _roles(view: RolesView) -> str:
    if not view.roles:
        return "You have no eligible or active roles."
    lines = ["Your roles:"]
    for r in view.roles:
        if r.active_until:
            state = "ACTIVE " + (
                "permanently" if r.active_until == "permanent" else f"until {when(r.active_until)}"
            )
            if r.member_type == "Assigned":
                state += " (assigned)"
        elif r.pending_request:
            state = f"pending ({r.pending_request})"
        else:
            state = "eligible" + (f" until {when(r.eligible_until)}" if r.eligible_until else "")
        approval = ", needs approval" if r.requires_approval else ""
        lines.append(
            f"  {r.role.id:<20} {r.role.name:<28} {state}"
            f"  [max {compact_duration(r.max_duration_seconds)}{approval}]"
        )
    return "\n".join(lines)


@render.register
def _form(view: FormView) -> str:
    if not view.roles:
        return "You are not eligible for any role."
    lines = ["Which role? Type: activate ROLE [DURATION] [ticket:REF] JUSTIFICATION"]
    for r in view.roles:
        approval = ", needs approval" if r.requires_approval else ""
        lines.append(
            f"  {r.role.id:<20} {r.role.name} "
            f"(max {compact_duration(r.max_duration_seconds)}{approval})"
        )
    return "\n".join(lines)


@render.register
def _requests(view: RequestListView) -> str:
    if not view.requests:
        return view.empty_text
    lines = [f"{view.title}:"]
    for req in view.requests:
        lines += request_lines(req)
        if view.for_approver:
            lines.append(f"  → approve {req.id}   |   deny {req.id} <reason>")
        else:
            lines.append(f"  → cancel {req.id}")
        lines.append("")
    return "\n".join(lines).rstrip()


@render.register
def _audit(view: AuditView) -> str:
    if not view.events:
        return f"{view.title}: no events."
    lines = [f"{view.title}:"]
    for e in view.events:
        extra = f"  ({e.summary})" if e.summary else ""
        lines.append(f"  #{e.id:<5} {when(e.at)}  {e.actor:<24} {e.action:<22} {e.target}{extra}")
    if view.truncated:
        lines.append("  … older events omitted; use `pim-bot audit export` for everything.")
    return "\n".join(lines)
