"""Jobs that run every N minutes on one replica: the directory sync and reconciliation.

Every replica's scheduler fires the job; the job first claims the current period in the
database (handlers.periodic) and only the replica that wins does the work. The work itself
talks to Graph and Slack, so it runs outside any transaction, between the claim and the
period's end mark.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from handlers.clock import Clock
from handlers.periodic import claim_period, finish_period
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)


class PeriodicJob:
    def __init__(
        self,
        uow: UnitOfWork,
        clock: Clock,
        *,
        kind: str,
        interval: timedelta,
        work: Callable[[], Awaitable[object]],
        worker: str,
    ) -> None:
        self.uow, self.clock, self.kind, self.interval = uow, clock, kind, interval
        self.work, self.worker = work, worker

    async def fire(self) -> bool:
        """One firing: True when this replica ran the period's work."""
        try:
            key = await claim_period(
                self.uow,
                kind=self.kind,
                interval=self.interval,
                now=self.clock.now(),
                worker=self.worker,
            )
        except Exception:  # the database is away: the next firing tries again
            logger.exception("%s: could not claim this period", self.kind)
            return False
        if key is None:
            logger.debug("%s: this period is another replica's", self.kind)
            return False
        error = None
        try:
            result = await self.work()
            logger.info("%s %s: %s", self.kind, key, result)
        except Exception as err:  # keep the scheduler alive; the next period runs again
            logger.exception("%s %s failed", self.kind, key)
            error = f"{type(err).__name__}: {err}"
        await finish_period(self.uow, key=key, now=self.clock.now(), error=error)
        return True
