"""Claiming due rows so that two processes never act on the same one.

PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED, so replicas share the work without waiting.
SQLite: every transaction already holds the write lock (BEGIN IMMEDIATE, see storage.db), and
the guarded UPDATE (only rows still pending) is the belt to that brace.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text, and_, cast, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from storage.models import OutboxMessage, Timer


async def claim_due_timers(
    session: AsyncSession, *, now: datetime, worker: str, limit: int
) -> list[Timer]:
    """Claim up to `limit` due timers, earliest first.

    The claim lives in the caller's transaction: the work it does commits with it, and a
    process killed mid-batch leaves every one of them pending for the next sweep."""
    due = (
        select(Timer.id)
        .where(Timer.status == "pending", Timer.due_at <= now)
        .order_by(Timer.due_at, Timer.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    # Two statements, not UPDATE ... WHERE id IN (SELECT ... LIMIT n): PostgreSQL may run
    # such a subquery more than once and so claim more than n rows.
    ids = list(await session.scalars(due))
    if not ids:
        return []
    claim = (
        update(Timer)
        .where(Timer.id.in_(ids), Timer.status == "pending")
        .values(status="running", claimed_by=worker)
        .returning(Timer)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    timers = list((await session.scalars(claim)).all())
    return sorted(timers, key=lambda t: (t.due_at, t.id))


async def next_timer_due(session: AsyncSession) -> datetime | None:
    return await session.scalar(
        select(Timer.due_at).where(Timer.status == "pending").order_by(Timer.due_at).limit(1)
    )


# Rows still on their way: a later message to the same person or channel waits for them.
_LIVE = ("pending", "sending")


def _waits_for_an_earlier_message() -> ColumnElement[bool]:
    """True for a row that must wait: an earlier message to the same person (or channel) over
    the same transport is still pending, sending or retrying. Earlier means an earlier
    original row: fanned-out copies take the place of the row they came from. Rows that
    ended (sent, unreachable, failed) no longer hold anything up. '*' rows only fan out,
    and card redraws (no person, no channel) are ordered by the worker; neither waits here."""
    earlier = aliased(OutboxMessage)
    channel, earlier_channel = cast(OutboxMessage.channel, Text), cast(earlier.channel, Text)
    same_addressee = or_(
        earlier.recipient_id == OutboxMessage.recipient_id,
        and_(OutboxMessage.recipient_id.is_(None), earlier.recipient_id.is_(None),
             channel != "null", earlier_channel == channel),  # JSON null: no channel
    )
    return and_(
        OutboxMessage.transport != "*",
        exists().where(
            earlier.status.in_(_LIVE),
            or_(earlier.transport == OutboxMessage.transport, earlier.transport == "*"),
            func.coalesce(earlier.parent_id, earlier.id)
            < func.coalesce(OutboxMessage.parent_id, OutboxMessage.id),
            same_addressee,
        ),
    )


async def claim_outbox(
    session: AsyncSession, *, now: datetime, worker: str, lease_until: datetime, limit: int,
    transports: list[str],
) -> list[OutboxMessage]:
    """Claim messages to send, oldest first, never one that must wait for an earlier message
    to the same person. The lease lets another worker retry if this one dies mid-send."""
    due = (
        select(OutboxMessage)
        .where(
            or_(OutboxMessage.status == "pending", OutboxMessage.status == "sending"),
            OutboxMessage.next_attempt_at <= now,
            OutboxMessage.transport.in_([*transports, "*"]),
            ~_waits_for_an_earlier_message(),
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        rows = list((await session.scalars(due.with_for_update(skip_locked=True))).all())
        for m in rows:
            m.status, m.claimed_by, m.next_attempt_at = "sending", worker, lease_until
        await session.flush()
        return rows
    claimed: list[OutboxMessage] = []
    for m in (await session.scalars(due)).all():
        result = await session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == m.id,
                OutboxMessage.status == m.status,
                OutboxMessage.next_attempt_at == m.next_attempt_at,
            )
            .values(status="sending", claimed_by=worker, next_attempt_at=lease_until)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            await session.refresh(m)
            claimed.append(m)
    return claimed


async def next_outbox_due(session: AsyncSession, *, transports: list[str]) -> datetime | None:
    """When the next message may go out. One waiting behind an earlier message is not due,
    however old: the earlier one's retry time is what counts."""
    return await session.scalar(
        select(OutboxMessage.next_attempt_at)
        .where(OutboxMessage.status.in_(list(_LIVE)),
               OutboxMessage.transport.in_([*transports, "*"]),
               ~_waits_for_an_earlier_message())
        .order_by(OutboxMessage.next_attempt_at)
        .limit(1)
    )
