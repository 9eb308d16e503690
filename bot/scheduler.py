"""The in-process clock: APScheduler wakes us; the database decides what is due.

No shared job store (APScheduler's FAQ: job stores cannot be shared between processes), and
no misfire grace limit: a job that runs late must still run, or access would never end.
The digest's cron job only inserts a timer row (bot.digest_schedule); sending it is a timer
like any other.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from apscheduler.job import Job
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.digest_schedule import DigestSchedule
from bot.outbox import OutboxWorker
from bot.periodic import PeriodicJob
from handlers.clock import Clock
from handlers.timers import TimerActions, run_due_timers
from storage.claims import next_outbox_due, next_timer_due
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)
PERIODIC_GRACE_SECONDS = 10.0


class Sweeper:
    def __init__(
        self,
        uow: UnitOfWork,
        clock: Clock,
        outbox: OutboxWorker,
        *,
        worker: str,
        sweep_seconds: float,
        timer_actions: TimerActions,
        digest: DigestSchedule | None = None,
        periodic: tuple[PeriodicJob, ...] = (),
    ) -> None:
        self.uow, self.clock, self.outbox, self.worker = uow, clock, outbox, worker
        self.timer_actions = timer_actions
        self.sweep_seconds = sweep_seconds
        self.digest = digest
        self.periodic = periodic  # directory sync, reconciliation: one replica per period
        # The first sweep schedules a digest missed while we were down (and a failed
        # cron run asks the next sweep to do the same).
        self._digest_catch_up = digest is not None
        self.scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )
        self._lock = asyncio.Lock()
        self._wake_job: Job | None = None
        self._wake_count = 0
        self._stopped = False
        self._again = False
        # Timers have a lane of their own, so access ends on time even while the outbox is
        # busy sending (thousands of "access ended" messages after a shift change).
        self._timer_lock = asyncio.Lock()
        self._timers_again = False
        self._timer_wake: Job | None = None
        self._periodic_runs: set[asyncio.Task[None]] = set()
        self._seen = -1  # uow.queued when a sweep last looked
        self.sweeps = 0  # sweeps completed: the first one includes the digest catch-up

    def start(self) -> None:
        self.scheduler.add_job(
            self.tick,
            "interval",
            seconds=self.sweep_seconds,
            id="sweep",
            next_run_time=datetime.now(UTC),
        )
        if self.digest is not None:
            self.scheduler.add_job(self._digest_due, self.digest.trigger, id="digest")
        for job in self.periodic:
            # From start-up on: a period nobody ran while everything was down runs now.
            self.scheduler.add_job(
                self._periodic,
                "interval",
                args=(job,),
                seconds=job.interval.total_seconds(),
                id=f"periodic-{job.kind}",
                next_run_time=datetime.now(UTC),
            )
        self.scheduler.start()

    async def stop(self) -> None:
        """Stop waking up, then let a sweep in progress finish its transaction.

        APScheduler's asyncio executor cancels the job tasks still running when it shuts
        down, so shut it down only once none is: pause it (no new runs), let a run in
        progress end (every job holds the lock while it works), and every run handed out
        meanwhile returns at once."""
        self._stopped = True
        if self.scheduler.running:
            self.scheduler.pause()
        await asyncio.sleep(0)  # runs already handed out start, and return
        async with self._lock, self._timer_lock:
            pass
        if self._periodic_runs:
            # A run cancelled inside a database call can leave its connection closing for
            # ever (and the process with it): let runs end, up to a bound for slow remotes.
            await asyncio.wait(set(self._periodic_runs), timeout=PERIODIC_GRACE_SECONDS)
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    async def _periodic(self, job: PeriodicJob) -> None:
        if self._stopped:
            return
        task = asyncio.current_task()
        assert task is not None
        self._periodic_runs.add(task)
        try:
            await job.fire()
        except asyncio.CancelledError:
            # Shutting down mid-sync: the period stays claimed and the next one runs in full,
            # so this is news, not an error (and a traceback would alarm whoever reads it).
            logger.info("%s: interrupted by shutdown", job.kind)
        finally:
            self._periodic_runs.discard(task)

    @property
    def busy(self) -> bool:
        """A sweep or a timer run is in progress. What it claimed is on its way and no longer
        shows as due, so "nothing is due" means "all done" only when nothing is busy."""
        return self._lock.locked() or self._timer_lock.locked()

    def poke(self) -> None:
        """Something changed here: look at the database now rather than at the next sweep.
        Free when nothing was queued here since a sweep last looked (a command that only
        read), so every command may poke."""
        if self.uow.queued == self._seen:
            return
        if self._lock.locked():
            self._again = True  # the sweep in progress looks once more before it ends
            return
        self._wake(datetime.now(UTC))

    def _wake(self, at: datetime) -> None:
        """Keep one pending wake-up, the earliest asked for. Each gets a fresh job id: a job
        cannot replace itself while it runs (max_instances=1 would skip the new run)."""
        if not self.scheduler.running:
            return
        pending = self._wake_job
        if pending is not None and self.scheduler.get_job(pending.id) is not None:
            if pending.next_run_time is not None and pending.next_run_time <= at:
                return
            pending.remove()
        self._wake_count += 1
        self._wake_job = self.scheduler.add_job(
            self.tick, "date", run_date=at, id=f"wake-{self._wake_count}"
        )

    async def _digest_due(self) -> None:
        """A firing of PIM_DIGEST_CRON: insert its timer row, then sweep at once."""
        if self._stopped or self.digest is None:
            return
        async with self._lock:
            if self._stopped:
                return
            try:
                await self.digest.fire()
            except Exception:  # e.g. the database is away: the next sweep catches up
                logger.exception("scheduling the digest failed; the next sweep retries")
                self._digest_catch_up = True
        self._wake(datetime.now(UTC))

    async def tick(self) -> None:
        if self._stopped:  # a run APScheduler had already handed out before stop()
            return
        if self._lock.locked():
            # Busy: rather than queue one more whole sweep per poke, ask the sweep in
            # progress to look once more before it ends; timers need not wait for it.
            self._again = True
            await self.run_timers()
            return
        async with self._lock:
            while not self._stopped:
                self._again = False
                try:
                    if self._digest_catch_up and self.digest is not None:
                        await self.digest.catch_up()
                        self._digest_catch_up = False
                    await self._sweep()
                    self.sweeps += 1
                except Exception:  # the next sweep tries again; the rows are still there
                    logger.exception("sweep failed")
                    return
                if not self._again:
                    return

    async def run_timers(self) -> None:
        """Run due timers, then wake this lane when the next falls due."""
        if self._stopped:
            return
        if self._timer_lock.locked():
            self._timers_again = True
            return
        async with self._timer_lock:
            self._timers_again = True
            while self._timers_again and not self._stopped:
                self._timers_again = False
                await run_due_timers(
                    self.uow, self.clock, worker=self.worker, actions=self.timer_actions
                )
            async with self.uow.read() as s:
                soonest = await next_timer_due(s)
        self._plan_timers(soonest)

    def _plan_timers(self, soonest: datetime | None) -> None:
        if (
            soonest is not None
            and soonest < self.clock.now() + timedelta(seconds=self.sweep_seconds)
            and self.scheduler.running
        ):
            delay = max(0.0, (soonest - self.clock.now()).total_seconds())
            if self._timer_wake is not None and self.scheduler.get_job(self._timer_wake.id):
                self._timer_wake.remove()
            self._wake_count += 1
            self._timer_wake = self.scheduler.add_job(
                self.run_timers,
                "date",
                run_date=datetime.now(UTC) + timedelta(seconds=delay),
                id=f"timers-{self._wake_count}",
            )

    async def _sweep(self) -> None:
        """Look first, in a read: claiming takes SQLite's write lock, and most sweeps (each
        poke) find nothing to do. Work committed before the last look is in what it read;
        from then on only work queued later needs a poke (this sweep's own rows do not)."""
        seen = self.uow.queued
        timer, outbox = await self._dues()
        now = self.clock.now()
        if timer is not None and timer <= now:
            await self.run_timers()
            outbox = now  # what the timers did queued messages, due now
        else:
            self._plan_timers(timer)  # their own lane: a slow send never holds them up
        if outbox is not None and outbox <= now:
            await self.outbox.run_once()
            seen = self.uow.queued
            timer, outbox = await self._dues()
        self._seen = seen
        self._plan_wakeup(timer, outbox)

    async def _dues(self) -> tuple[datetime | None, datetime | None]:
        async with self.uow.read() as s:
            return (
                await next_timer_due(s),
                await next_outbox_due(s, transports=list(self.outbox.transports)),
            )

    def _plan_wakeup(self, *dues: datetime | None) -> None:
        soonest = min((d for d in dues if d is not None), default=None)
        horizon = self.clock.now() + timedelta(seconds=self.sweep_seconds)
        if soonest is None or soonest >= horizon:
            return  # the interval sweep gets there first
        # Our clock may be a test clock; APScheduler runs on wall time, so wait the difference.
        delay = max(0.0, (soonest - self.clock.now()).total_seconds())
        self._wake(datetime.now(UTC) + timedelta(seconds=delay))
