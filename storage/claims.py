"""Claiming due rows so that two processes never act on the same one.

PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED, so replicas share the work without waiting.
SQLite: every write transaction already holds the write lock (BEGIN IMMEDIATE, see
storage.sqlite), and the guarded UPDATE (only rows still pending) is the belt to that brace.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

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


async def claim_outbox(
    session: AsyncSession, *, now: datetime, worker: str, lease_until: datetime, limit: int,
    transports: list[str],
) -> list[OutboxMessage]:
    """Claim messages to send. The lease lets another worker retry if this one dies mid-send."""
    due = (
        select(OutboxMessage)
        .where(
            or_(OutboxMessage.status == "pending", OutboxMessage.status == "sending"),
            OutboxMessage.next_attempt_at <= now,
            OutboxMessage.transport.in_([*transports, "*"]),
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
    return await session.scalar(
        select(OutboxMessage.next_attempt_at)
        .where(OutboxMessage.status.in_(["pending", "sending"]),
               OutboxMessage.transport.in_([*transports, "*"]))
        .order_by(OutboxMessage.next_attempt_at)
        .limit(1)
    )
