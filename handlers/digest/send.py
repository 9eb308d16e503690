"""Sending the digest: once per period, to every admin, through the outbox.

A period is named by its end. Its timer row has the unique key `digest:<end, UTC ISO>`, so
however many replicas insert it only one row exists, only one sweeper claims it, and the
outbox rows, the alert messages and the `digest.sent` audit event are written in the same
transaction that marks it done: each period's digest goes out exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import exists, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from cards.views import ALERT, DIGEST, AlertLine, DigestView, Notification
from handlers.assignment import require_admin
from handlers.clock import Clock
from handlers.digest.report import DigestOptions, compute_digest
from handlers.records import SYSTEM_ACTOR, audit, notify
from handlers.timers import TimerAction
from storage.models import AuditEvent, Principal, Timer
from storage.uow import UnitOfWork
from vocab.states import TimerStatus

logger = logging.getLogger(__name__)

DIGEST_TIMER = "digest"
SENT = "digest.sent"
KEY_PREFIX = "digest:"
# New high-severity alerts each get their own message; past this many, one message lists
# the rest, so a bad week does not bury admins in notifications.
SEPARATE_ALERTS = 5


def digest_key(period_end: datetime) -> str:
    """The one name every replica gives this period: its end, in UTC."""
    return KEY_PREFIX + period_end.astimezone(UTC).isoformat()


def period_end_of(timer: Timer) -> datetime:
    if timer.key and timer.key.startswith(KEY_PREFIX):
        return datetime.fromisoformat(timer.key.removeprefix(KEY_PREFIX))
    return timer.due_at


class _Bound(UnitOfWork):
    """The caller's open transaction, for code that asks a UnitOfWork for one. The digest
    is computed inside the claim that sends it (SQLite has one writer at a time: a second
    connection would wait for ours)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.engine = session.bind  # type: ignore[assignment]

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        yield self.session


# --- scheduling: a timer row per period, inserted at most once ---------------------------


async def insert_digest_timer(
    session: AsyncSession, *, period_end: datetime, **values: Any
) -> bool:
    """Insert the period's timer unless it exists already (another replica, an earlier
    start); True when this call inserted it. INSERT … ON CONFLICT DO NOTHING on both
    dialects, so a lost race is not an error and does not abort the transaction."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    row = {
        "kind": DIGEST_TIMER,
        "key": digest_key(period_end),
        "due_at": period_end,
        "status": TimerStatus.PENDING,
        "attempts": 0,
        **values,
    }
    stmt = insert(Timer).values(**row).on_conflict_do_nothing(index_elements=["key"])
    result = await session.execute(stmt)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def schedule_digest(uow: UnitOfWork, *, period_end: datetime) -> bool:
    """A firing of PIM_DIGEST_CRON: make sure its period's timer exists."""
    async with uow.transaction() as s:
        return await insert_digest_timer(s, period_end=period_end)


async def catch_up_digest(uow: UnitOfWork, clock: Clock, *, latest: datetime) -> bool:
    """At start-up: `latest` is the most recent past firing. Schedule its digest if it was
    due (some admin existed by then) and never sent; drop older digests still waiting, so
    a long outage sends one digest, not a backlog. True when a timer was inserted."""
    async with uow.transaction() as s:
        superseded = await s.execute(
            update(Timer)
            .where(
                Timer.kind == DIGEST_TIMER,
                Timer.status == TimerStatus.PENDING,
                Timer.key < digest_key(latest),
            )
            .values(
                status=TimerStatus.CANCELED,
                done_at=clock.now(),
                last_error="superseded by a later digest",
            )
            .execution_options(synchronize_session=False)
        )
        if superseded.rowcount:  # type: ignore[attr-defined]
            logger.info("dropped %s older digests that never went out", superseded.rowcount)  # type: ignore[attr-defined]
        had_admins = await s.scalar(
            select(exists().where(Principal.admin.is_(True), Principal.created_at <= latest))
        )
        if not had_admins:
            return False
        return await insert_digest_timer(s, period_end=latest)


# --- sending -----------------------------------------------------------------------------


def digest_timer_action(options: DigestOptions) -> TimerAction:
    async def send(s: AsyncSession, timer: Timer, now: datetime) -> int:
        return await write_digest(s, now=now, period_end=period_end_of(timer), options=options)

    return send


async def send_digest(
    uow: UnitOfWork, clock: Clock, *, period_end: datetime, options: DigestOptions
) -> int:
    """Send the digest of the period ending at `period_end` now, unless that period's digest
    went out already; returns how many admins it was queued for."""
    now = clock.now()
    async with uow.transaction() as s:
        if not await _claim_period(s, period_end=period_end, now=now):
            logger.info("digest %s was sent already", digest_key(period_end))
            return 0
        return await write_digest(s, now=now, period_end=period_end, options=options)


async def _claim_period(s: AsyncSession, *, period_end: datetime, now: datetime) -> bool:
    done = {"status": TimerStatus.DONE, "done_at": now, "claimed_by": "send"}
    if await insert_digest_timer(s, period_end=period_end, **done):
        return True
    taken = await s.execute(  # scheduled but not yet run: take it over
        update(Timer)
        .where(Timer.key == digest_key(period_end), Timer.status == TimerStatus.PENDING)
        .values(**done)
        .execution_options(synchronize_session=False)
    )
    return bool(taken.rowcount == 1)  # type: ignore[attr-defined]


async def write_digest(
    s: AsyncSession, *, now: datetime, period_end: datetime, options: DigestOptions
) -> int:
    """Inside the caller's transaction: one digest message per admin (the outbox fans each
    out to every platform that reaches them), one message per NEW high-severity alert, and
    the `digest.sent` audit event that remembers which alerts were sent."""
    admins = list(
        (
            await s.scalars(
                select(Principal).where(Principal.admin.is_(True)).order_by(Principal.id)
            )
        ).all()
    )
    if not admins:
        logger.warning("digest %s: there are no admins to send it to", digest_key(period_end))
        return 0
    view = await compute_digest(_Bound(s), end=period_end, options=options)
    notify(
        s,
        now=now,
        note=Notification(kind=DIGEST, headline=digest_headline(view), digest=view),
        recipients=admins,
    )
    high = [a for a in view.alerts if a.severity == "high"]
    already = await _high_alerts_sent(s)
    new = [a for a in high if a.code not in already]
    for note in alert_notes(new):
        notify(s, now=now, note=note, recipients=admins)
    await audit(
        s,
        at=now,
        actor=SYSTEM_ACTOR,
        action=SENT,
        target=digest_key(period_end),
        period_start=view.period_start,
        period_end=view.period_end,
        admins=len(admins),
        alerts=[a.code for a in view.alerts],
        high_alerts=[a.code for a in high],
        new_alerts=[a.code for a in new],
    )
    logger.info(
        "digest %s queued for %s admins (%s new alerts)",
        digest_key(period_end),
        len(admins),
        len(new),
    )
    return len(admins)


async def _high_alerts_sent(s: AsyncSession) -> set[str]:
    """The high-severity alert codes of the previous digest (empty before the first)."""
    details = await s.scalar(
        select(AuditEvent.details)
        .where(AuditEvent.action == SENT)
        .order_by(AuditEvent.id.desc())
        .limit(1)
    )
    return set((details or {}).get("high_alerts") or ())


def alert_notes(alerts: list[AlertLine]) -> list[Notification]:
    notes = [
        Notification(kind=ALERT, headline=a.text, details=(f"{a.severity} · {a.code}",))
        for a in alerts[:SEPARATE_ALERTS]
    ]
    rest = alerts[SEPARATE_ALERTS:]
    if rest:
        notes.append(
            Notification(
                kind=ALERT,
                headline=f"{len(rest)} more new high-severity PIM alerts",
                details=tuple(a.text for a in rest),
            )
        )
    return notes


def digest_headline(view: DigestView) -> str:
    tz = ZoneInfo(view.timezone)
    start = datetime.fromisoformat(view.period_start).astimezone(tz)
    end = datetime.fromisoformat(view.period_end).astimezone(tz)

    def day(at: datetime, *, year: bool) -> str:
        text = f"{at:%a} {at.day} {at:%b}" + (f" {at.year}" if year else "")
        return text if (at.hour, at.minute) == (0, 0) else f"{text} {at:%H:%M}"

    return f"PIM digest for {day(start, year=start.year != end.year)} – {day(end, year=True)}"


# --- the chat preview --------------------------------------------------------------------


async def preview_digest(
    uow: UnitOfWork, clock: Clock, *, actor: str, options: DigestOptions
) -> DigestView:
    """`/pim digest`: the digest up to now, for an admin's eyes only; nothing is recorded."""
    async with uow.transaction() as s:
        await require_admin(s, actor, "preview the digest")
    return await compute_digest(uow, end=clock.now(), options=options)
