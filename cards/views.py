"""Transport-neutral view data. The engine fills these; cards.slack/teams/text render them.

Everything here is plain data that survives a JSON round trip, because notifications wait in
the outbox table as JSON until a delivery worker renders them for a platform.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from vocab.states import Action, MemberType, ReviewDecision, Status

# Action ids (Slack) and verbs (Teams Action.Execute). One list, shared by every renderer.
APPROVE = "pim_approve"
DENY = "pim_deny"
CANCEL = "pim_cancel"
REQUEST_AGAIN = "pim_request_again"
ACTIVATE = "pim_activate"
DEACTIVATE = "pim_deactivate"
EXTEND = "pim_extend"  # more time on an activation about to end (selfExtend)
RENEW = "pim_renew"  # more time on an assignment nearing its end (selfRenew)
# Access review buttons: the value (Slack) or data["item"] (Teams) is the review item's id.
REVIEW_APPROVE = "pim_review_approve"
REVIEW_DENY = "pim_review_deny"
REVIEW_DONT_KNOW = "pim_review_dont_know"
REVIEW_VERBS = (REVIEW_APPROVE, REVIEW_DENY, REVIEW_DONT_KNOW)

# Notification kinds (outbox rows and the messages people get).
APPROVAL_NEEDED = "approval_needed"  # the approver's card
REQUEST_UPDATE = "request_update"  # every posted approval card changes to show the outcome
SUBMITTED = "submitted"
APPROVED = "approved"
DENIED = "denied"
TIMED_OUT = "timed_out"
CANCELED = "canceled"
ACTIVATED = "activated"
EXPIRING = "expiring"
EXPIRED = "expired"
DEACTIVATED = "deactivated"
ASSIGNED = "assigned"
REMOVED = "removed"
RENEWABLE = "renewable"  # the holder: an assignment ends soon, with Renew
ASSIGNMENT_ENDING = "assignment_ending"  # the admins: the same, with how to extend it
REVIEW_CARD = "review_card"  # a reviewer's card: their items, each with Approve / Deny / …
REVIEW_UPDATE = "review_update"  # every posted copy of a reviewer's card is redrawn
REVIEW_SUMMARY = "review_summary"  # to admins when an instance ends
GRANT_STATUS = "grant_status"  # a grant took effect (or was taken back) in another system
GRANT_FAILED = "grant_failed"  # a grant or revoke gave up: to the requester and the admins


# The same emoji and words on every platform.
KIND_EMOJI = {
    APPROVAL_NEEDED: "🔐",
    SUBMITTED: "📨",
    APPROVED: "✅",
    DENIED: "⛔",
    TIMED_OUT: "⌛",
    CANCELED: "🚫",
    ACTIVATED: "🟢",
    EXPIRING: "⏳",
    EXPIRED: "🔒",
    DEACTIVATED: "🔒",
    ASSIGNED: "➕",
    REMOVED: "➖",
    RENEWABLE: "⏳",
    ASSIGNMENT_ENDING: "⏳",
    REVIEW_CARD: "📋",
    REVIEW_UPDATE: "📋",
    REVIEW_SUMMARY: "📋",
    GRANT_STATUS: "🟢",
    GRANT_FAILED: "⚠️",
}
OUTCOME = {  # decision outcome or request status -> (emoji, word)
    Status.GRANTED: ("✅", "approved"),
    Status.PROVISIONED: ("✅", "approved"),
    Status.DENIED: ("⛔", "denied"),
    Status.TIMED_OUT: ("⌛", "timed out"),
    Status.CANCELED: ("🚫", "canceled"),
    Status.REVOKED: ("🚫", "revoked"),
    Status.PENDING_APPROVAL: ("⏳", "waiting for approval"),
}


def compact_duration(seconds: int | None) -> str:
    if not seconds:
        return "permanent"
    td = timedelta(seconds=seconds)
    days, rest = td.days, td.seconds
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{days}d" if days else "",
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts) or "0s"


def when(iso: str | None) -> str:
    if not iso:
        return "—"
    at = datetime.fromisoformat(iso).astimezone(UTC)
    # Seconds only when there are any: a 10s activation "until 09:12" would say nothing.
    return at.strftime("%Y-%m-%d %H:%M:%S UTC" if at.second else "%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True, slots=True)
class Person:
    email: str
    name: str


@dataclass(frozen=True, slots=True)
class RoleRef:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Decision:
    by: Person | None  # None: the system (time-out)
    outcome: Status  # Granted / Denied / Canceled / TimedOut / Revoked / Provisioned
    at: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RequestView:
    id: str
    status: Status
    action: Action
    requester: Person
    role: RoleRef
    duration_seconds: int | None
    start_at: str
    created_at: str
    justification: str | None = None
    ticket: str | None = None
    deadline: str | None = None
    needs_approver_justification: bool = False
    decision: Decision | None = None

    @property
    def pending(self) -> bool:
        return self.status == Status.PENDING_APPROVAL

    def outcome_line(self) -> str:
        """One sentence saying how the request ended, the same on every platform."""
        d = self.decision
        if d is None:
            return "Waiting for approval" if self.pending else self.status
        who = d.by.name if d.by else "pim-bot"
        verb = {
            Status.GRANTED: "Approved",
            Status.PROVISIONED: "Approved",
            Status.DENIED: "Denied",
            Status.CANCELED: "Canceled",
            Status.TIMED_OUT: "Timed out",
            Status.REVOKED: "Revoked",
        }.get(d.outcome, d.outcome)
        line = f"{verb} by {who} at {when(d.at)}" if d.by else f"{verb} at {when(d.at)}"
        if d.outcome == Status.TIMED_OUT:
            line = f"Timed out at {when(d.at)}: nobody decided in time"
        if d.reason:
            line += f": {d.reason}"
        return line


DIGEST = "digest"  # the weekly digest, to each admin
ALERT = "alert"  # a new high-severity PIM alert, to each admin


@dataclass(frozen=True, slots=True)
class Figure:
    """One number of the digest beside the previous period's (renderers show the change)."""

    label: str
    value: float | None
    previous: float | None = None
    unit: str = ""  # "" (a count), "s" (seconds, shown as a duration) or "%"


@dataclass(frozen=True, slots=True)
class Ranked:
    label: str
    value: str  # already formatted: "12", "3h20m", "2026-12-01"


@dataclass(frozen=True, slots=True)
class AlertLine:
    code: str
    severity: str  # high / medium / low
    text: str


@dataclass(frozen=True, slots=True)
class DigestView:
    title: str
    period_start: str
    period_end: str
    timezone: str
    tiles: tuple[Figure, ...] = ()  # Entra's four
    approvals: tuple[Figure, ...] = ()
    daily_activations: tuple[int, ...] = ()  # one per day of the period, oldest first
    top_roles: tuple[Ranked, ...] = ()
    slowest_approvers: tuple[Ranked, ...] = ()
    after_hours: Figure | None = None
    longest_activations: tuple[Ranked, ...] = ()
    frequent_activators: tuple[Ranked, ...] = ()
    ending_soon: tuple[Ranked, ...] = ()
    alerts: tuple[AlertLine, ...] = ()
    # The audit chain's head when the digest was made (`audit-checkpoint seq=… hash=…`), so
    # admins hold a copy outside the database for `pim-bot audit verify --checkpoint`.
    checkpoint: str = ""
    # Open access reviews and their progress ("40 of 120 decided · ends …").
    reviews: tuple[Ranked, ...] = ()

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DigestView:
        def figures(key: str) -> tuple[Figure, ...]:
            return tuple(Figure(**f) for f in raw.get(key) or ())

        def ranked(key: str) -> tuple[Ranked, ...]:
            return tuple(Ranked(**r) for r in raw.get(key) or ())

        after = raw.get("after_hours")
        return cls(
            title=raw["title"],
            period_start=raw["period_start"],
            period_end=raw["period_end"],
            timezone=raw["timezone"],
            tiles=figures("tiles"),
            approvals=figures("approvals"),
            daily_activations=tuple(raw.get("daily_activations") or ()),
            top_roles=ranked("top_roles"),
            slowest_approvers=ranked("slowest_approvers"),
            after_hours=Figure(**after) if after else None,
            longest_activations=ranked("longest_activations"),
            frequent_activators=ranked("frequent_activators"),
            ending_soon=ranked("ending_soon"),
            alerts=tuple(AlertLine(**a) for a in raw.get("alerts") or ()),
            checkpoint=raw.get("checkpoint") or "",
            reviews=ranked("reviews"),
        )


@dataclass(frozen=True, slots=True)
class ReviewItemView:
    """One assignment under review, as its reviewers see it."""

    id: int
    person: Person
    role: RoleRef
    kind: str  # eligible / active
    recommendation: ReviewDecision | None = None
    recommendation_reason: str | None = None
    decision: ReviewDecision = ReviewDecision.NOT_REVIEWED
    decided_by: Person | None = None
    decided_at: str | None = None
    reason: str | None = None

    @property
    def decided(self) -> bool:
        return self.decision != ReviewDecision.NOT_REVIEWED

    def outcome_line(self) -> str:
        word = REVIEW_WORDS.get(self.decision, self.decision)
        who = f" by {self.decided_by.name}" if self.decided_by else ""
        line = f"{word}{who} at {when(self.decided_at)}"
        return line + (f": {self.reason}" if self.reason else "")


REVIEW_WORDS = {
    ReviewDecision.APPROVE: "Approved",
    ReviewDecision.DENY: "Denied",
    ReviewDecision.DONT_KNOW: "Don't know",
    ReviewDecision.NOT_REVIEWED: "Not reviewed",
}
REVIEW_EMOJI = {
    ReviewDecision.APPROVE: "✅",
    ReviewDecision.DENY: "⛔",
    ReviewDecision.DONT_KNOW: "❔",
    ReviewDecision.NOT_REVIEWED: "⏳",
}


@dataclass(frozen=True, slots=True)
class ReviewCardView:
    """A reviewer's card for one review instance: a page of their items and their progress."""

    card: str  # the name every posted copy is redrawn by
    review_id: str
    name: str
    number: int
    ends_at: str
    require_reason: bool
    items: tuple[ReviewItemView, ...]
    total: int  # the reviewer's items in this instance
    decided: int
    open: bool = True

    @property
    def left(self) -> int:
        return self.total - self.decided

    def progress_line(self) -> str:
        state = f"ends {when(self.ends_at)}" if self.open else "closed"
        return f"{self.decided} of {self.total} decided · {state}"


@dataclass(frozen=True, slots=True)
class ReviewsView:
    """`reviews`: every open review with items for me."""

    cards: tuple[ReviewCardView, ...]
    empty_text: str = "No access reviews are waiting for you."


@dataclass(frozen=True, slots=True)
class Notification:
    """A message to one person (or channel) that something happened."""

    kind: str
    headline: str
    request: RequestView | None = None
    role: RoleRef | None = None
    end_at: str | None = None
    details: tuple[str, ...] = ()
    digest: DigestView | None = None
    review: ReviewCardView | None = None

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Notification:
        req = raw.get("request")
        role = raw.get("role")
        return cls(
            kind=raw["kind"],
            headline=raw["headline"],
            request=_request_from_dict(req) if req else None,
            role=RoleRef(**role) if role else None,
            end_at=raw.get("end_at"),
            details=tuple(raw.get("details") or ()),
            digest=DigestView.from_dict(raw["digest"]) if raw.get("digest") else None,
            review=_review_from_dict(raw["review"]) if raw.get("review") else None,
        )


def _review_from_dict(raw: dict[str, Any]) -> ReviewCardView:
    items = []
    for item in raw["items"]:
        data = dict(item)
        data["person"], data["role"] = Person(**data["person"]), RoleRef(**data["role"])
        data["decided_by"] = Person(**data["decided_by"]) if data.get("decided_by") else None
        data["decision"] = ReviewDecision(data["decision"])
        rec = data.get("recommendation")
        data["recommendation"] = ReviewDecision(rec) if rec else None
        items.append(ReviewItemView(**data))
    return ReviewCardView(**{**raw, "items": tuple(items)})


def _request_from_dict(raw: dict[str, Any]) -> RequestView:
    data = dict(raw)
    data["requester"] = Person(**data["requester"])
    data["role"] = RoleRef(**data["role"])
    data["status"], data["action"] = Status(data["status"]), Action(data["action"])
    dec = data.get("decision")
    if dec:
        by = dec.get("by")
        data["decision"] = Decision(
            by=Person(**by) if by else None,
            outcome=Status(dec["outcome"]),
            at=dec["at"],
            reason=dec.get("reason"),
        )
    return RequestView(**data)


@dataclass(frozen=True, slots=True)
class RoleLine:
    role: RoleRef
    max_duration_seconds: int
    requires_approval: bool
    eligible_until: str | None = None  # None: permanent
    active_until: str | None = None  # set when the role is active now
    active_since: str | None = None
    member_type: MemberType | None = None  # set when active
    pending_request: str | None = None
    requires_justification: bool = False  # the form marks those inputs required
    requires_ticket: bool = False


@dataclass(frozen=True, slots=True)
class RolesView:
    person: Person
    roles: tuple[RoleLine, ...]


@dataclass(frozen=True, slots=True)
class RequestListView:
    title: str
    requests: tuple[RequestView, ...]
    for_approver: bool
    empty_text: str


@dataclass(frozen=True, slots=True)
class AuditLine:
    id: int
    at: str
    actor: str
    action: str
    target: str
    summary: str


@dataclass(frozen=True, slots=True)
class AuditView:
    title: str
    events: tuple[AuditLine, ...]
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """A plain answer to the person who typed a command."""

    text: str
    ok: bool = True
    usage: str | None = None
    request: RequestView | None = None


@dataclass(frozen=True, slots=True)
class FormView:
    """The activation form: the caller's eligible roles, ready for a modal or card."""

    person: Person
    roles: tuple[RoleLine, ...]
    default_duration_seconds: int = 3600
    errors: dict[str, str] = field(default_factory=dict)


View = (
    Reply
    | RolesView
    | RequestListView
    | AuditView
    | FormView
    | Notification
    | DigestView
    | ReviewsView
)


def _plain(value: Any) -> Any:
    """dataclasses.asdict for these views, without its deep copy of every leaf (they are all
    immutable here): a quarter of the cost, on every message queued."""
    if is_dataclass(value) and not isinstance(value, type):
        return {name: _plain(getattr(value, name)) for name in _field_names(type(value))}
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names
