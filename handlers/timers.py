"""Running durable timers that have fallen due, once each, whatever the number of processes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.clock import Clock
from handlers.lifecycle import EXPIRE, START, TIMEOUT, WARN, expire, start_scheduled, time_out, warn
from storage.claims import claim_due_timers, next_timer_due
from storage.models import Timer
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)

TimerAction = Callable[[AsyncSession, Timer, datetime], Awaitable[object]]

_ACTIONS: dict[str, TimerAction] = {
    EXPIRE: lambda s, t, now: expire(s, schedule_id=t.subject_id or 0, now=now),
    WARN: lambda s, t, now: warn(s, schedule_id=t.subject_id or 0, now=now),
    TIMEOUT: lambda s, t, now: time_out(s, request_id=t.subject_id or 0, now=now),
    START: lambda s, t, now: start_scheduled(s, request_id=t.subject_id or 0, now=now),
}


def register_timer_action(kind: str, action: TimerAction) -> None:
    """Later features (the digest) add their own kinds of timed work here."""
    _ACTIONS[kind] = action


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(300, 2 ** min(attempts, 8)))


async def run_due_timers(
    uow: UnitOfWork, clock: Clock, *, worker: str, batch: int = 50
) -> int:
    """Run every timer due now. Each batch commits as one transaction; a timer whose action
    fails is rolled back alone (savepoint) and retried later with backoff."""
    done = 0
    while True:
        now = clock.now()
        async with uow.transaction() as s:
            timers = await claim_due_timers(s, now=now, worker=worker, limit=batch)
            for timer in timers:
                now = clock.now()  # each record says when it really happened
                tid, kind, attempts = timer.id, timer.kind, timer.attempts
                action = _ACTIONS.get(kind)
                try:
                    async with s.begin_nested():
                        if action is None:
                            raise LookupError(f"no action for timer kind {kind!r}")
                        await action(s, timer, now)
                except Exception as err:  # one bad timer must not stop access ending for others
                    logger.exception("timer %s (%s) failed", tid, kind)
                    # The savepoint rollback expired the ORM object; write the retry directly.
                    await s.execute(
                        update(Timer).where(Timer.id == tid).values(
                            status="pending", attempts=attempts + 1,
                            due_at=now + _backoff(attempts + 1),
                            last_error=f"{type(err).__name__}: {err}"[:2000],
                        ).execution_options(synchronize_session=False)
                    )
                    continue
                await s.execute(
                    update(Timer).where(Timer.id == tid).values(status="done", done_at=now)
                    .execution_options(synchronize_session=False)
                )
                done += 1
        if len(timers) < batch:
            return done


async def next_due(uow: UnitOfWork) -> datetime | None:
    async with uow.transaction() as s:
        return await next_timer_due(s)
