"""The grant worker: claims due grant rows, calls the provider of each row's target kind,
and records the outcome, retrying with backoff (the provider's Retry-After first).

Exactly once, and where it is kept: a row is claimed by one worker at a time, with a lease
(storage.grant_claims); a worker killed mid-call leaves the row to fall due again when the
lease ends, and the next call carries the same grant id, which providers use as their
idempotency key (a webhook's `webhook-id`). A revoke or an extension that arrives while a
call is out waits for it (handlers.grants.state, handlers.grants.extension).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from handlers.clock import Clock
from handlers.grants.jobs import jobs_for
from handlers.grants.outcomes import Outcome, record
from handlers.grants.provider import GrantJob, Provider, ProviderError, Target
from storage.grant_claims import claim_grants, next_grant_due
from storage.models import Grant
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)

LEASE = timedelta(seconds=120)
_NEVER = datetime.min.replace(tzinfo=UTC)  # longer than any provider's own timeout


class GrantsWorker:
    def __init__(
        self,
        uow: UnitOfWork,
        clock: Clock,
        providers: Mapping[str, Provider],
        *,
        worker: str,
        batch: int = 50,
        concurrency: int = 16,
        max_seconds: float = 5.0,
        lease: timedelta = LEASE,
        poke: Callable[[], None] | None = None,
    ) -> None:
        self.lease = lease
        # Wakes the outbox after a round wrote notices ("active in Entra", "failed: …").
        self.poke_outbox = poke
        self.uow, self.clock, self.worker = uow, clock, worker
        self.providers = dict(providers)
        self.batch, self.max_seconds = batch, max_seconds
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._wake = asyncio.Event()
        self._looked_at = -1  # uow.queued when a round last began to claim
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._quiet_until: dict[str, datetime] = {}  # pace key -> until when

    async def run_once(self) -> int:
        """Work off what is due now, a claimed batch at a time; return how many calls
        succeeded. Stops claiming after max_seconds so a backlog yields to a poll."""
        started, done = time.monotonic(), 0
        while self.providers and time.monotonic() - started < self.max_seconds:
            claimed = await self._claim()
            if not claimed:
                break
            outcomes = await asyncio.gather(*(self._call(g, j) for g, j in claimed))
            async with self.uow.transaction() as s:
                now = self.clock.now()
                for outcome in outcomes:
                    await record(s, outcome, worker=self.worker, now=now)
            if self.poke_outbox is not None:
                self.poke_outbox()
            done += sum(1 for o in outcomes if o.error is None)
        return done

    async def _claim(self) -> list[tuple[Grant, GrantJob]]:
        async with self.uow.transaction() as s:
            now = self.clock.now()
            rows = await claim_grants(
                s,
                now=now,
                worker=self.worker,
                lease_until=now + self.lease,
                limit=self.batch,
                kinds=list(self.providers),
            )
            jobs = {j.grant_id: j for j in await jobs_for(s, rows)}
        return [(g, jobs[g.grant_id]) for g in rows if g.grant_id in jobs]

    async def _call(self, row: Grant, job: GrantJob) -> Outcome:
        provider = self.providers[job.target.kind]
        key = _pace_key(job.target)
        async with self._slots:
            # Once a remote said "slow down", its other calls wait out the same Retry-After
            # without being sent (and without using an attempt).
            quiet = (self._quiet_until.get(key, _NEVER) - self.clock.now()).total_seconds()
            if quiet > 0:
                return Outcome(
                    row, job, ProviderError("paced: the remote asked us to wait", retry_after=quiet)
                )
            try:
                call = {
                    "grant": provider.grant,
                    "extend": provider.extend,
                    "revoke": provider.revoke,
                }
                await call[job.action](job)
            except ProviderError as err:
                # Being told to wait (429) is the remote pacing us, not a failure.
                level = logging.INFO if err.retry_after is not None else logging.WARNING
                if err.retry_after is not None:
                    self._quiet_until[key] = max(
                        self._quiet_until.get(key, _NEVER),
                        self.clock.now() + timedelta(seconds=err.retry_after),
                    )
                logger.log(
                    level, "%s %s (%s) failed: %s", job.action, job.grant_id, job.target.kind, err
                )
                return Outcome(row, job, err)
            except Exception as err:  # the network edge: anything else is retried
                logger.warning(
                    "%s %s (%s) failed: %r", job.action, job.grant_id, job.target.kind, err
                )
                return Outcome(row, job, err)
        return Outcome(row, job)

    # --- running in the background ------------------------------------------------------

    def start(self, *, poll_seconds: float) -> None:
        if self.providers and self._task is None:
            self._task = asyncio.create_task(self._loop(poll_seconds), name="grants")

    def poke(self) -> None:
        """Something was committed: claim now rather than at the next poll. Free when nothing
        was queued since a round last began (a command that only read), so every command may
        poke: a round is a write transaction, on SQLite the one write lock."""
        if self.uow.queued != self._looked_at:
            self._wake.set()

    async def stop(self, *, grace: float = 15.0) -> None:
        """Let a round in progress record its calls (else their rows wait out the lease)."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=grace)
        except TimeoutError:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _loop(self, poll_seconds: float) -> None:
        while not self._stopping:
            self._wake.clear()
            self._looked_at = self.uow.queued  # what is committed by now, this round claims
            try:
                await self.run_once()
                wait = await self._until_next(poll_seconds)
            except Exception:  # the database is away: the rows wait for the next round
                logger.exception("grant round failed")
                wait = poll_seconds
            if self._stopping:
                return
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
            except TimeoutError:
                pass

    async def _until_next(self, poll_seconds: float) -> float:
        async with self.uow.read() as s:
            due = await next_grant_due(s, kinds=list(self.providers))
        if due is None:
            return poll_seconds
        return min(poll_seconds, max(0.0, (due - self.clock.now()).total_seconds()))


def _pace_key(target: Target) -> str:
    """What one Retry-After applies to: a webhook's host, or a whole provider (Graph, ARM and
    Slack limit per application)."""
    if target.kind == "webhook":
        return f"webhook:{urlsplit(target.ref).netloc}"
    return target.kind
