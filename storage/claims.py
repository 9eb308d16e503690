"""Claiming due rows so that two processes never act on the same one.

PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED, so replicas share the work without waiting.
SQLite: every write transaction already holds the write lock (BEGIN IMMEDIATE, see
storage.sqlite), and the guarded UPDATE (only rows still pending) is the belt to that brace.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Text, and_, cast, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.elements import ColumnElement

from storage.models import OutboxMessage, Timer
from vocab.states import OutboxStatus, TimerStatus


async def claim_due_timers(
    session: AsyncSession, *, now: datetime, worker: str, limit: int
) -> list[Timer]:
    """Claim up to `limit` due timers, earliest first.

    The claim lives in the caller's transaction: the work it does commits with it, and a
    process killed mid-batch leaves every one of them pending for the next sweep."""
    due = (
        select(Timer.id)
        .where(Timer.status == TimerStatus.PENDING, Timer.due_at <= now)
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
        .where(Timer.id.in_(ids), Timer.status == TimerStatus.PENDING)
        .values(status=TimerStatus.RUNNING, claimed_by=worker)
        .returning(Timer)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    timers = list((await session.scalars(claim)).all())
    return sorted(timers, key=lambda t: (t.due_at, t.id))


async def next_timer_due(session: AsyncSession) -> datetime | None:
    return await session.scalar(
        select(Timer.due_at)
        .where(Timer.status == TimerStatus.PENDING)
        .order_by(Timer.due_at)
        .limit(1)
    )


# Rows still on their way: a later message to the same person or channel waits for them.
_LIVE = (OutboxStatus.PENDING, OutboxStatus.SENDING)


def _waits_for_an_earlier_message() -> ColumnElement[bool]:
    """True for a row that must wait: an earlier message to the same person (or channel) over
    the same transport is still pending, sending or retrying. Earlier means an earlier
    original row: fanned-out copies take the place of the row they came from. Rows that
    ended (sent, unreachable, failed) no longer hold anything up. '*' rows only fan out,
    and card redraws (no person, no channel) are ordered by the worker; neither waits here.
    Two EXISTS rather than one with OR, so each is an index lookup (ix_outbox_recipient)."""
    earlier = aliased(OutboxMessage)
    order = func.coalesce(OutboxMessage.parent_id, OutboxMessage.id)

    def before_on_this_transport() -> list[ColumnElement[bool]]:
        return [
            earlier.status.in_(_LIVE),
            or_(earlier.transport == OutboxMessage.transport, earlier.transport == "*"),
            func.coalesce(earlier.parent_id, earlier.id) < order,
        ]

    channel = cast(OutboxMessage.channel, Text)
    to_person = exists().where(
        earlier.recipient_id == OutboxMessage.recipient_id, *before_on_this_transport()
    )
    to_channel = and_(
        OutboxMessage.recipient_id.is_(None),
        channel != "null",  # JSON null: no channel
        exists().where(
            earlier.recipient_id.is_(None),
            cast(earlier.channel, Text) == channel,
            *before_on_this_transport(),
        ),
    )
    return and_(OutboxMessage.transport != "*", or_(to_person, to_channel))


async def claim_outbox(
    session: AsyncSession,
    *,
    now: datetime,
    worker: str,
    lease_until: datetime,
    limit: int,
    transports: list[str],
) -> list[OutboxMessage]:
    """Claim up to `limit` due messages for these transports ('*': rows still to fan out),
    never one that must wait for an earlier message to the same person. Sends whose lease
    ran out (their worker died) come first, then the rest in due order. The lease lets
    another worker retry if this one dies mid-send."""
    claimed: list[OutboxMessage] = []
    for status in (OutboxStatus.SENDING, OutboxStatus.PENDING):
        if len(claimed) < limit:
            claimed += await _claim(
                session,
                status=status,
                now=now,
                worker=worker,
                lease_until=lease_until,
                limit=limit - len(claimed),
                transports=transports,
            )
    return claimed


async def _claim(
    session: AsyncSession,
    *,
    status: str,
    now: datetime,
    worker: str,
    lease_until: datetime,
    limit: int,
    transports: list[str],
) -> list[OutboxMessage]:
    # One status and this order follow ix_outbox_due, so the scan stops at `limit` rows
    # instead of sorting every due row (10,000 of them after a mass expiry).
    due = (
        select(OutboxMessage)
        .where(
            OutboxMessage.status == status,
            OutboxMessage.next_attempt_at <= now,
            OutboxMessage.transport.in_(transports),
            ~_waits_for_an_earlier_message(),
        )
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    rows = list((await session.scalars(due)).all())
    if not rows:
        return []
    # One guarded UPDATE for the lot, not a statement per row.
    result = await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id.in_([m.id for m in rows]),
            OutboxMessage.status == status,
            OutboxMessage.next_attempt_at <= now,
        )
        .values(status=OutboxStatus.SENDING, claimed_by=worker, next_attempt_at=lease_until)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != len(rows):  # type: ignore[attr-defined]
        # Someone got there first (cannot happen under BEGIN IMMEDIATE): keep only ours.
        ours = set(
            (
                await session.scalars(
                    select(OutboxMessage.id).where(
                        OutboxMessage.id.in_([m.id for m in rows]),
                        OutboxMessage.claimed_by == worker,
                        OutboxMessage.status == OutboxStatus.SENDING,
                        OutboxMessage.next_attempt_at == lease_until,
                    )
                )
            ).all()
        )
        rows = [m for m in rows if m.id in ours]
    for m in rows:  # what the UPDATE wrote, without reading each row back
        for key, value in (
            ("status", OutboxStatus.SENDING),
            ("claimed_by", worker),
            ("next_attempt_at", lease_until),
        ):
            set_committed_value(m, key, value)
    return rows


async def fan_out(
    session: AsyncSession,
    *,
    now: datetime,
    copies: list[dict[str, Any]],
    fanned: list[int],
    unreachable: list[int],
) -> None:
    """Replace claimed '*' rows by their per-transport copies, in bulk."""
    if copies:
        await session.execute(insert(OutboxMessage), copies)
    for status, ids in ((OutboxStatus.FANNED, fanned), (OutboxStatus.UNREACHABLE, unreachable)):
        if ids:
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids))
                .values(status=status, next_attempt_at=now)
                .execution_options(synchronize_session=False)
            )


async def mark_attempted(session: AsyncSession, *, ids: list[int], now: datetime) -> None:
    """From now on these may have gone out (see OutboxMessage.attempted_at)."""
    if ids:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.attempted_at.is_(None))
            .values(attempted_at=now)
            .execution_options(synchronize_session=False)
        )


async def mark_sent(session: AsyncSession, *, ids: list[int], now: datetime) -> None:
    if ids:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(status=OutboxStatus.SENT, sent_at=now)
            .execution_options(synchronize_session=False)
        )


async def next_outbox_due(session: AsyncSession, *, transports: list[str]) -> datetime | None:
    """When the next message may go out. One waiting behind an earlier message is not due,
    however old: the earlier one's retry time is what counts."""
    return await session.scalar(
        select(OutboxMessage.next_attempt_at)
        .where(
            OutboxMessage.status.in_(list(_LIVE)),
            OutboxMessage.transport.in_([*transports, "*"]),
            ~_waits_for_an_earlier_message(),
        )
        .order_by(OutboxMessage.next_attempt_at)
        .limit(1)
    )
