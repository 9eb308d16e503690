"""Tables. Names and values mirror Microsoft Graph's PIM resources where one exists."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from storage.types import UTCDateTime, state_type
from vocab.states import (
    Action,
    GrantStatus,
    MemberType,
    OutboxStatus,
    ReviewDecision,
    ReviewOutcome,
    ReviewResult,
    ReviewStatus,
    ScheduleKind,
    ScheduleState,
    Status,
    TimerStatus,
)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Principal(Base):
    __tablename__ = "principals"
    # Every command finds its sender by case-insensitive email: without this, a full scan.
    __table_args__ = (Index("ix_principals_email_lower", func.lower(text("email"))),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    slack_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    teams_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    from_policy: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class Role(Base):
    __tablename__ = "roles"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # Stored as the policy file spells them (durations as seconds); handlers own the meaning.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    from_policy: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    # The policy's `grant:` targets, as handlers.grants.targets writes them; NULL: none.
    grant_targets: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)


_ACTIVATED = text(f"kind = '{ScheduleKind.ACTIVE}' AND member_type = '{MemberType.ACTIVATED}'")


class Schedule(Base):
    """An eligibility or an active assignment of a principal to a role."""

    __tablename__ = "schedules"
    __table_args__ = (
        Index("ix_schedules_lookup", "principal_id", "role_id", "kind", "state"),
        Index("ix_schedules_end", "state", "end_at"),
        # the digest: activations by start, assignments by creation, past holders by end
        Index(
            "ix_schedules_activated_start",
            "start_at",
            postgresql_where=_ACTIVATED,
            sqlite_where=_ACTIVATED,
        ),
        Index("ix_schedules_created", "created_at"),
        Index("ix_schedules_ended", "ended_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id"))
    role_id: Mapped[str] = mapped_column(ForeignKey("roles.id"))
    kind: Mapped[ScheduleKind] = mapped_column(state_type(ScheduleKind, length=16))
    member_type: Mapped[MemberType] = mapped_column(state_type(MemberType, length=16))
    state: Mapped[ScheduleState] = mapped_column(state_type(ScheduleState, length=16))
    start_at: Mapped[datetime]
    end_at: Mapped[datetime | None]
    request_id: Mapped[int | None] = mapped_column(ForeignKey("schedule_requests.id"))
    from_policy: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]

    principal: Mapped[Principal] = relationship(lazy="joined")
    role: Mapped[Role] = relationship(lazy="joined")


class ScheduleRequest(Base):
    __tablename__ = "schedule_requests"
    __table_args__ = (
        Index("ix_requests_status", "status", "role_id"),
        Index("ix_requests_person", "principal_id", "role_id", "status"),
        Index(
            "ix_requests_approval_created",
            "created_at",
            postgresql_where=text("approval_deadline IS NOT NULL"),
            sqlite_where=text("approval_deadline IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    short_id: Mapped[str] = mapped_column(String(16), unique=True)
    action: Mapped[Action] = mapped_column(state_type(Action, length=32))
    status: Mapped[Status] = mapped_column(state_type(Status, length=32))
    kind: Mapped[ScheduleKind] = mapped_column(
        state_type(ScheduleKind, length=16), default=ScheduleKind.ACTIVE
    )
    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id"))
    role_id: Mapped[str] = mapped_column(ForeignKey("roles.id"))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("principals.id"))
    justification: Mapped[str | None] = mapped_column(Text)
    ticket_system: Mapped[str | None] = mapped_column(String(100))
    ticket_number: Mapped[str | None] = mapped_column(String(100))
    start_at: Mapped[datetime]
    duration_seconds: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    approval_deadline: Mapped[datetime | None]

    principal: Mapped[Principal] = relationship(foreign_keys=[principal_id], lazy="joined")
    created_by: Mapped[Principal] = relationship(foreign_keys=[created_by_id], lazy="joined")
    role: Mapped[Role] = relationship(lazy="joined")


class ApprovalStep(Base):
    __tablename__ = "approval_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("schedule_requests.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("principals.id"))
    decision: Mapped[ReviewResult] = mapped_column(state_type(ReviewResult, length=16))
    justification: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime]

    reviewer: Mapped[Principal] = relationship(lazy="joined")


class AuditEvent(Base):
    """Append-only. Each row carries the hash of the previous one (see storage.audit)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(400))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # The audit key this row's hash is an HMAC under; NULL: plain SHA-256 (storage.audit_hash).
    key_id: Mapped[str | None] = mapped_column(String(16))


class OutboxMessage(Base):
    """A message to deliver. transport '*' rows fan out to every transport that reaches
    the recipient when a delivery worker first claims them."""

    __tablename__ = "outbox"
    __table_args__ = (
        # claims walk it in order (id breaks ties), stopping as soon as they have enough
        Index("ix_outbox_due", "status", "next_attempt_at", "id"),
        # a person's messages are sent in order: "is an earlier one still on its way?"
        Index("ix_outbox_recipient", "recipient_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime]
    transport: Mapped[str] = mapped_column(String(16), default="*")
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"))
    recipient_id: Mapped[int | None] = mapped_column(ForeignKey("principals.id"))
    # a channel rather than a person, e.g. {"slack": "C0APPROVALS"}
    channel: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    kind: Mapped[str] = mapped_column(String(40))
    request_id: Mapped[int | None] = mapped_column(ForeignKey("schedule_requests.id"))
    # a card redrawn by name rather than by request, e.g. a reviewer's review card
    card: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[OutboxStatus] = mapped_column(
        state_type(OutboxStatus, length=16), default=OutboxStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    # When a send that may have reached the platform first started: a crash or a timeout
    # leaves it set, so the next attempt looks before posting again. Cleared when a
    # refusal (e.g. 429) proves nothing went out.
    attempted_at: Mapped[datetime | None]


class PostedMessage(Base):
    """Where a card was posted, so it can be updated in place after a decision."""

    __tablename__ = "posted_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("schedule_requests.id"), index=True)
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"))
    transport: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(40))
    recipient_id: Mapped[int | None] = mapped_column(ForeignKey("principals.id"))
    card: Mapped[str | None] = mapped_column(String(64), index=True)
    ref: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]


class ConversationRef(Base):
    """A Teams conversation reference (or any transport's address) for proactive messages."""

    __tablename__ = "conversation_refs"
    __table_args__ = (UniqueConstraint("transport", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transport: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(200))
    principal_id: Mapped[int | None] = mapped_column(ForeignKey("principals.id"), index=True)
    ref: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime]


class Timer(Base):
    """Durable time-based work: the database, not a process, remembers what is due."""

    __tablename__ = "timers"
    __table_args__ = (
        Index("ix_timers_due", "status", "due_at"),
        # Cancelling a subject's timers (an approval cancels the time-out) finds them here,
        # not among every pending timer (two per active activation).
        Index("ix_timers_subject", "subject_id", "kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # expire / warn / timeout / start / digest
    due_at: Mapped[datetime]
    subject_id: Mapped[int | None] = mapped_column(Integer)
    # optional uniqueness, e.g. one digest per period
    key: Mapped[str | None] = mapped_column(String(100), unique=True)
    status: Mapped[TimerStatus] = mapped_column(
        state_type(TimerStatus, length=16), default=TimerStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    done_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class SeenRequest(Base):
    """A signed request already received (its signature, or a Slack event id), until the time
    after which the sender's own checks would refuse it anyway. Rows past `expires_at` are
    purged; the primary key makes "first to insert wins" hold across replicas."""

    __tablename__ = "seen_requests"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class ReviewDefinition(Base):
    """A recurring access review, as the policy file's `reviews:` section defines it."""

    __tablename__ = "review_definitions"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # Stored as the policy file spells it (handlers.reviews.definitions owns the meaning).
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ReviewInstance(Base):
    """One run of a review: the assignments in scope were snapshotted when it opened."""

    __tablename__ = "review_instances"
    __table_args__ = (
        UniqueConstraint("definition_id", "number"),
        # a scheduled instance opens once, however many replicas try (manual ones: NULL)
        UniqueConstraint("definition_id", "scheduled_for"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition_id: Mapped[str] = mapped_column(ForeignKey("review_definitions.id"))
    number: Mapped[int] = mapped_column(Integer)
    scheduled_for: Mapped[datetime | None]
    status: Mapped[ReviewStatus] = mapped_column(state_type(ReviewStatus, length=16))
    opened_by: Mapped[str] = mapped_column(String(320))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]


class ReviewItem(Base):
    """One assignment under review, and its decision (the first reviewer to answer wins)."""

    __tablename__ = "review_items"
    __table_args__ = (Index("ix_review_items_instance", "instance_id", "decision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("review_instances.id"))
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id"))
    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id"))
    role_id: Mapped[str] = mapped_column(ForeignKey("roles.id"))
    kind: Mapped[str] = mapped_column(String(16))
    # pim-bot's own history: activations of this role by this person in the look-back window
    activations: Mapped[int] = mapped_column(Integer, default=0)
    recommendation: Mapped[ReviewDecision | None] = mapped_column(
        state_type(ReviewDecision, length=16)
    )
    decision: Mapped[ReviewDecision] = mapped_column(
        state_type(ReviewDecision, length=16), default=ReviewDecision.NOT_REVIEWED
    )
    reason: Mapped[str | None] = mapped_column(Text)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("principals.id"))
    decided_at: Mapped[datetime | None]
    outcome: Mapped[ReviewOutcome | None] = mapped_column(state_type(ReviewOutcome, length=16))
    applied_at: Mapped[datetime | None]


class ReviewReviewer(Base):
    """Who reviews an item: one row per (item, reviewer) pair."""

    __tablename__ = "review_reviewers"
    __table_args__ = (Index("ix_review_reviewers_reviewer", "reviewer_id", "instance_id"),)

    item_id: Mapped[int] = mapped_column(ForeignKey("review_items.id"), primary_key=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("principals.id"), primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("review_instances.id"))


class Grant(Base):
    """One target of one activation in the system that holds the real access: a durable job,
    claimed like the outbox (storage.grant_claims), granted once and revoked once."""

    __tablename__ = "grants"
    __table_args__ = (
        Index("ix_grants_due", "status", "next_attempt_at", "id"),
        Index("ix_grants_schedule", "schedule_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Stable across retries and replicas: the providers' idempotency key.
    grant_id: Mapped[str] = mapped_column(String(40), unique=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id"))
    request_id: Mapped[int | None] = mapped_column(ForeignKey("schedule_requests.id"))
    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id"))
    role_id: Mapped[str] = mapped_column(ForeignKey("roles.id"))
    kind: Mapped[str] = mapped_column(String(32))
    target: Mapped[dict[str, Any]] = mapped_column(JSON)
    phase: Mapped[str] = mapped_column(String(8), default="grant")  # grant / revoke
    status: Mapped[GrantStatus] = mapped_column(state_type(GrantStatus, length=24))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When due; while claimed, the end of the claim's lease.
    next_attempt_at: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None]
    # Set once a grant call may have reached the provider: a revoke is then needed.
    attempted_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    provisioned_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class DirectorySource(Base):
    """Where people come from (the policy's `directory:`): an Entra group, or the Slack
    workspace. The sync reads each and upserts principals (handlers.directory_sync)."""

    __tablename__ = "directory_sources"
    __table_args__ = (UniqueConstraint("kind", "ref"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # entra_group / slack
    ref: Mapped[str] = mapped_column(String(64))  # the group's object id, or "workspace"
    created_at: Mapped[datetime]


class DirectoryPerson(Base):
    """A principal the directory sync has seen: when last, and when they left every source.
    Leaving keeps the principal (history, bindings); it ends what the directory gave them."""

    __tablename__ = "directory_people"

    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id"), primary_key=True)
    sources: Mapped[list[str]] = mapped_column(JSON, default=list)  # e.g. ["entra_group:…"]
    seen_at: Mapped[datetime]
    left_at: Mapped[datetime | None] = mapped_column(index=True)


class GroupAssignment(Base):
    """An eligibility given to an Entra group rather than to a person: its members are
    eligible while they are members (checked at request time, handlers.group_eligibility)."""

    __tablename__ = "group_assignments"
    __table_args__ = (UniqueConstraint("group_id", "role_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[str] = mapped_column(String(64), index=True)
    role_id: Mapped[str] = mapped_column(ForeignKey("roles.id"), index=True)
    start_at: Mapped[datetime]
    end_at: Mapped[datetime | None]
    from_policy: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
