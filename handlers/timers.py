"""Running durable timers that have fallen due, once each, whatever the number of processes.

Which kinds of timer exist and what each does is a table the caller passes in (the
composition root builds it; each test builds its own), never a module-level registry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.clock import Clock
from handlers.endings import expire_due, time_out_due, warn_due
from handlers.lifecycle import EXPIRE, RENEW, START, TIMEOUT, WARN, start_scheduled
from handlers.renew_notice import renewal_due
from storage.claims import claim_due_timers, next_timer_due
from storage.models import Timer
from storage.uow import UnitOfWork
from vocab.states import TimerStatus

logger = logging.getLogger(__name__)

# Work for one timer, and work for a batch of timers of one kind.
TimerAction = Callable[[AsyncSession, Timer, datetime], Awaitable[object]]
BatchAction = Callable[[AsyncSession, Sequence[Timer], datetime], Awaitable[object]]
TimerActions = Mapping[str, BatchAction]

# A batch is one transaction: big enough that 10,000 expiries are few commits, small enough
# that no transaction holds SQLite's write lock (or the audit chain's lock) for long.
BATCH = 250
# After each batch, leave SQLite's write lock free for a moment so that a user's command
# waiting on it gets its turn before the next batch takes it again.
_SQLITE_BREATH = 0.02


def one_by_one(action: TimerAction) -> BatchAction:
    """A batch action from a per-timer one, for rare kinds (a scheduled start, the digest)."""

    async def each(s: AsyncSession, timers: Sequence[Timer], now: datetime) -> None:
        for timer in timers:
            await action(s, timer, now)

    return each


def lifecycle_actions() -> dict[str, BatchAction]:
    """The kinds of timer that access itself needs; add others (the digest) to a copy."""

    async def start(s: AsyncSession, t: Timer, now: datetime) -> bool:
        return await start_scheduled(s, request_id=t.subject_id or 0, now=now)

    return {
        EXPIRE: expire_due,
        WARN: warn_due,
        TIMEOUT: time_out_due,
        START: one_by_one(start),
        RENEW: renewal_due,
    }


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(300, 2 ** min(attempts, 8)))


async def run_due_timers(
    uow: UnitOfWork, clock: Clock, *, worker: str, actions: TimerActions, batch: int = BATCH
) -> int:
    """Run every timer due now, a batch per transaction, so memory and lock time stay
    bounded however many are due. Returns how many ran."""
    done = 0
    while True:
        async with uow.transaction() as s:
            now = clock.now()
            timers = await claim_due_timers(s, now=now, worker=worker, limit=batch)
            for timer in timers:  # keep their values through a savepoint's rollback
                s.expunge(timer)
            done += await _run_batch(s, timers, now, actions)
        if len(timers) < batch:
            return done
        await asyncio.sleep(_SQLITE_BREATH if uow.dialect == "sqlite" else 0)


async def _run_batch(
    s: AsyncSession, timers: Sequence[Timer], now: datetime, actions: TimerActions
) -> int:
    by_kind: dict[str, list[Timer]] = {}
    for timer in timers:
        by_kind.setdefault(timer.kind, []).append(timer)
    ok: list[int] = []
    for group in by_kind.values():
        if await _attempt(s, group, now, actions):
            ok += [t.id for t in group]
        elif len(group) > 1:  # find the bad one: the others must not wait for it
            for timer in group:
                if await _attempt(s, [timer], now, actions):
                    ok.append(timer.id)
    if ok:
        await s.execute(
            update(Timer)
            .where(Timer.id.in_(ok))
            .values(status=TimerStatus.DONE, done_at=now)
            .execution_options(synchronize_session=False)
        )
    return len(ok)


async def _attempt(
    s: AsyncSession, timers: Sequence[Timer], now: datetime, actions: TimerActions
) -> bool:
    """Run one kind's action on these timers in a savepoint; on failure roll it back alone
    and, for a single timer, schedule its retry with backoff."""
    kind = timers[0].kind
    try:
        async with s.begin_nested():
            action = actions.get(kind)
            if action is None:
                raise LookupError(f"no action for timer kind {kind!r}")
            await action(s, timers, now)
        return True
    except Exception as err:  # one bad timer must not stop access ending for others
        if len(timers) > 1:
            logger.warning("a batch of %s %s timers failed; trying one by one", len(timers), kind)
            return False
        tid, attempts = timers[0].id, timers[0].attempts
        logger.exception("timer %s (%s) failed", tid, kind)
        await s.execute(
            update(Timer)
            .where(Timer.id == tid)
            .values(
                status=TimerStatus.PENDING,
                attempts=attempts + 1,
                due_at=now + _backoff(attempts + 1),
                last_error=f"{type(err).__name__}: {err}"[:2000],
            )
            .execution_options(synchronize_session=False)
        )
        return False


async def next_due(uow: UnitOfWork) -> datetime | None:
    async with uow.transaction() as s:
        return await next_timer_due(s)
