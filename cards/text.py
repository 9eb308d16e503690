"""Plain-text rendering of every view, for the console and as the chat fallback text."""

from __future__ import annotations

from datetime import datetime
from functools import singledispatch
from zoneinfo import ZoneInfo

from cards.review_text import review_card_text, reviews_text
from cards.views import (
    ALERT,
    APPROVAL_NEEDED,
    DIGEST,
    EXPIRED,
    EXPIRING,
    RENEWABLE,
    SUBMITTED,
    AuditView,
    DigestView,
    Figure,
    FormView,
    Notification,
    Ranked,
    Reply,
    RequestListView,
    RequestView,
    ReviewsView,
    RolesView,
    compact_duration,
    when,
)
from vocab.states import MemberType


@singledispatch
def render(view: object) -> str:
    raise TypeError(f"no text rendering for {type(view).__name__}")


@render.register
def _reply(view: Reply) -> str:
    req = view.request
    if view.ok and req is not None and req.pending:
        # The one notice a requester gets on asking: what to do next, and until when.
        until = f" (approvers can decide until {when(req.deadline)})" if req.deadline else ""
        return f"{view.text}\n  → cancel {req.id}{until}"
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


def decide_hint(req: RequestView) -> str:
    """How to approve or deny, the same on the approver's card and in `approvals`."""
    approve = (
        f"approve {req.id} <reason>" if req.needs_approver_justification else f"approve {req.id}"
    )
    return f"  → {approve}   |   deny {req.id} <reason>"


@render.register
def _notification(view: Notification) -> str:
    if view.kind == DIGEST and view.digest is not None:
        return digest_text(view.digest, view.headline)
    if view.kind == ALERT:
        return alert_text(view)
    if view.review is not None:
        return review_card_text(view.review, view.headline)
    lines = [f"🔔 {view.headline}"]
    req = view.request
    if view.kind == APPROVAL_NEEDED and req is not None:
        lines += request_lines(req)
        lines.append(decide_hint(req))
    elif view.kind == SUBMITTED and req is not None:
        lines.append(f"  → cancel {req.id}")
    elif view.kind == EXPIRING and view.role is not None:
        lines.append(f"  → more time: extend {view.role.id} [DURATION]")
    elif view.kind == RENEWABLE and view.role is not None:
        lines.append(f"  → more time: renew {view.role.id} [DURATION]")
    elif view.kind == EXPIRED and view.role is not None and view.request is None:
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
            if r.member_type == MemberType.ASSIGNED:
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
            lines.append(decide_hint(req))
        else:
            lines.append(f"  → cancel {req.id}")
        lines.append("")
    return "\n".join(lines).rstrip()


@render.register
def _audit(view: AuditView) -> str:
    if not view.events:
        return f"{view.title}: no events."
    lines = [f"{view.title}:"]
    # Columns as wide as their longest entry, so a long actor (a policy file's path) never
    # pushes its row's action out of line with the others.
    actor_w = max(len(e.actor) for e in view.events)
    action_w = max(len(e.action) for e in view.events)
    for e in view.events:
        extra = f"  ({e.summary})" if e.summary else ""
        lines.append(
            f"  #{e.id:<5} {when(e.at)}  {e.actor:<{actor_w}}  {e.action:<{action_w}}  "
            f"{e.target}{extra}"
        )
    if view.truncated:
        lines.append("  … older events omitted; use `pim-bot audit export` for everything.")
    return "\n".join(lines)


# --- the digest ------------------------------------------------------------------------------

SPARKS = "▁▂▃▄▅▆▇█"
MINUS = "−"
_SEVERITY = {"high": "‼", "medium": "!", "low": "·"}


def sparkline(values: tuple[int, ...] | list[int]) -> str:
    """One character per value: ▁ for nothing, ▂…█ for a share of the busiest."""
    peak = max(values, default=0)
    if peak <= 0:
        return SPARKS[0] * len(values)
    return "".join(SPARKS[0] if n <= 0 else SPARKS[1 + round((n / peak) * 6)] for n in values)


def _amount(value: float, unit: str, *, signed: bool = False) -> str:
    sign = ("+" if value > 0 else MINUS if value < 0 else "") if signed else ""
    size = abs(value) if signed else value
    if unit == "s":
        return sign + (compact_duration(int(round(size))) if round(size) else "0s")
    number = f"{size:.0f}" if float(size).is_integer() else f"{size:.1f}"
    return sign + number + (" pts" if unit == "%" and signed else unit)


def figure_value(fig: Figure) -> str:
    return "—" if fig.value is None else _amount(fig.value, fig.unit)


def previous_value(fig: Figure) -> str:
    return "—" if fig.previous is None else _amount(fig.previous, fig.unit)


def change(fig: Figure) -> str:
    """`+3`, `−2` or `=` against the previous period; empty when either is unknown."""
    if fig.value is None or fig.previous is None:
        return ""
    delta = fig.value - fig.previous
    return "=" if delta == 0 else _amount(delta, fig.unit, signed=True)


def arrow(fig: Figure) -> str:
    """`▲3`, `▼2` or `=` (chat cards, where colour-free arrows read faster than signs)."""
    moved = change(fig)
    if moved in ("", "="):
        return moved
    return ("▲" if moved[0] == "+" else "▼") + moved[1:]


def local_time(iso: str, timezone: str) -> datetime:
    return datetime.fromisoformat(iso).astimezone(ZoneInfo(timezone))


def period_label(view: DigestView) -> str:
    """`Mon 2 Mar 09:00 → Mon 9 Mar 2026 09:00 (Europe/Berlin)`, in the digest's time zone."""
    start = local_time(view.period_start, view.timezone)
    end = local_time(view.period_end, view.timezone)

    def day(at: datetime, year: bool) -> str:
        return f"{at:%a} {at.day} {at:%b}" + (f" {at.year}" if year else "") + f" {at:%H:%M}"

    return f"{day(start, start.year != end.year)} → {day(end, True)} ({view.timezone})"


def daily_label(view: DigestView) -> str:
    days = view.daily_activations
    return f"{sparkline(days)}  {len(days)} days, peak {max(days, default=0)}/day"


DIGEST_LISTS = (  # (attribute of DigestView, title)
    ("top_roles", "Top roles (eligible + active holders)"),
    ("frequent_activators", "Most frequent activators"),
    ("longest_activations", "Longest activations"),
    ("slowest_approvers", "Slowest approvers"),
    ("ending_soon", "Ending soon"),
    ("reviews", "Open access reviews"),
)


def digest_lists(view: DigestView) -> list[tuple[str, tuple[Ranked, ...]]]:
    """The ranked lists that have something in them, in reading order."""
    return [(title, getattr(view, name)) for name, title in DIGEST_LISTS if getattr(view, name)]


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    """Left-align the first column, right-align the others."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        indent
        + "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def _figures(figures: list[Figure]) -> list[str]:
    rows = [["", "now", "before", "change"]]
    rows += [[f.label, figure_value(f), previous_value(f), change(f)] for f in figures]
    return _table(rows)


def digest_text(view: DigestView, headline: str | None = None) -> str:
    lines = [f"📊 {headline or view.title}", f"  {period_label(view)}", ""]
    if view.tiles:
        lines += _figures(list(view.tiles))
    if view.daily_activations:
        lines += ["", f"  Activations per day  {daily_label(view)}"]
    approvals = list(view.approvals) + ([view.after_hours] if view.after_hours else [])
    if approvals:
        lines += ["", "Approvals and activity"] + _figures(approvals)
    for title, items in digest_lists(view):
        lines += ["", f"{title}"] + _table(
            [[f"{i}. {r.label}", r.value] for i, r in enumerate(items, 1)]
        )
    lines += ["", "Alerts"]
    lines += [
        f"  {_SEVERITY.get(a.severity, '·')} {a.severity:<6}  {a.text}" for a in view.alerts
    ] or ["  No alerts."]
    lines += ["", "More: `audit` (or `/pim audit`) shows the audit trail."]
    if view.checkpoint:
        lines.append(checkpoint_note(view))
    return "\n".join(lines)


def checkpoint_note(view: DigestView) -> str:
    """The digest's footer: keep it, and `pim-bot audit verify --checkpoint` proves later
    that no audit event up to here was removed or rewritten."""
    return f"Audit checkpoint (keep a copy): {view.checkpoint}"


render.register(DigestView, digest_text)
render.register(ReviewsView, reviews_text)


def alert_text(note: Notification) -> str:
    lines = [f"🚨 {note.headline}"] + [f"  {d}" for d in note.details]
    return "\n".join([*lines, "  More: `audit` (or `/pim audit`) shows the audit trail."])
