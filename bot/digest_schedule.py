"""PIM_DIGEST_CRON in PIM_TIMEZONE: when the digest is due.

Every replica runs the same cron job in its own in-memory APScheduler. A firing only inserts
that period's timer row (unique key, INSERT … ON CONFLICT DO NOTHING), so all replicas agree
on one row; the sweeper that claims it sends the digest (handlers.digest.send). At start-up
the most recent past firing is inserted the same way, so a digest missed while everything was
down goes out then — only that one, and never twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from bot.config import Settings
from handlers.clock import Clock
from handlers.digest.report import DigestOptions
from handlers.digest.send import catch_up_digest, schedule_digest
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)

# How far back start-up looks for the most recent firing: the rarest crontab line that
# still fires (29 February) fires every four years, or eight across a skipped leap year.
_LOOKBACK = timedelta(days=366 * 8 + 2)


def digest_options(settings: Settings) -> DigestOptions:
    return DigestOptions(timezone=settings.timezone)


def digest_trigger(settings: Settings) -> CronTrigger:
    return CronTrigger.from_crontab(settings.digest_cron, timezone=ZoneInfo(settings.timezone))


def latest_firing(trigger: CronTrigger, now: datetime) -> datetime | None:
    """The last time at or before `now` that the trigger fires (None if it never did).

    First fire at or after t, f(t), never decreases as t grows, so search the latest t with
    f(t) <= now: double a window back from now until it holds a firing, then bisect it to
    the second (crontab has no finer unit)."""

    def first_from(t: datetime) -> datetime | None:
        return trigger.get_next_fire_time(None, t)

    here = first_from(now)
    if here is not None and here <= now:  # firing exactly now (within the second)
        return here
    window = timedelta(minutes=1)
    while True:
        found = first_from(now - window)
        if found is not None and found <= now:
            break
        if window >= _LOOKBACK:
            return None
        window *= 2
    lo, hi = now - window, now  # f(lo) <= now < f(hi)
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        at = first_from(mid)
        if at is not None and at <= now:
            lo = mid
        else:
            hi = mid
    return first_from(lo)


class DigestSchedule:
    def __init__(self, uow: UnitOfWork, clock: Clock, *, trigger: CronTrigger) -> None:
        self.uow, self.clock, self.trigger = uow, clock, trigger

    async def fire(self) -> bool:
        """The cron job: insert this firing's timer (True when this replica did it)."""
        at = latest_firing(self.trigger, self.clock.now())
        if at is None:
            return False
        inserted = await schedule_digest(self.uow, period_end=at)
        logger.info(
            "digest for %s: %s",
            at.isoformat(),
            "scheduled" if inserted else "already scheduled (another replica)",
        )
        return inserted

    async def catch_up(self) -> bool:
        """At start-up: schedule the most recent past firing's digest if it never went
        out (True when this replica inserted it)."""
        at = latest_firing(self.trigger, self.clock.now())
        if at is None:
            return False
        inserted = await catch_up_digest(self.uow, self.clock, latest=at)
        logger.info(
            "digest catch-up for %s: %s",
            at.isoformat(),
            "scheduled" if inserted else "nothing to do",
        )
        return inserted
