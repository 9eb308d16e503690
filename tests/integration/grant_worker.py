"""One replica for the two-replica grant test: run timers (expiry queues revokes) and the
grant worker with the real webhook provider until every grant is revoked (or `until`, a
bound for a broken build), noting each call it made.

It says `ready` once imported and connected, then reads `START_AT UNTIL` (epoch seconds) from
stdin: the test writes the policy only when both replicas are ready, so the assignments'
short lives do not run out while a loaded machine starts the interpreters."""

from __future__ import annotations

import asyncio
import sys
import time

from sqlalchemy import func, select

from bot.grants_worker import GrantsWorker
from bot.providers.webhook import WebhookProvider
from handlers.clock import SystemClock
from handlers.grants.provider import GrantJob
from handlers.timers import lifecycle_actions, run_due_timers
from storage.db import make_engine
from storage.models import Grant
from storage.uow import UnitOfWork
from tests.webhookfake import SECRET
from vocab.states import GrantStatus


class Noting(WebhookProvider):
    def __init__(self, path: str) -> None:
        super().__init__(secret=SECRET, timeout=5)
        self.path = path

    async def grant(self, job: GrantJob) -> None:
        await super().grant(job)
        self._note(job)

    async def revoke(self, job: GrantJob) -> None:
        await super().revoke(job)
        self._note(job)

    def _note(self, job: GrantJob) -> None:
        with open(self.path, "a") as f:
            f.write(f"{job.grant_id}:{job.action}\n")


async def main(url: str, name: str, out: str) -> None:
    engine = make_engine(url)
    uow, clock = UnitOfWork(engine), SystemClock()
    provider = Noting(out)
    # A small batch, so one replica cannot take everything before the other gets a turn.
    worker = GrantsWorker(uow, clock, {"webhook": provider}, worker=name, batch=4, concurrency=2)
    await _all_revoked(uow)  # connected (and the driver imported) before saying so
    print("ready", flush=True)
    start_at, until = (float(word) for word in sys.stdin.readline().split())
    while time.time() < start_at:
        await asyncio.sleep(0.005)
    while time.time() < until:
        await run_due_timers(uow, clock, worker=name, actions=lifecycle_actions())
        if await worker.run_once() == 0:
            if await _all_revoked(uow):
                break  # nothing is left for either replica: no need to wait out `until`
            await asyncio.sleep(0.1)
    await provider.close()
    await engine.dispose()


async def _all_revoked(uow: UnitOfWork) -> bool:
    async with uow.read() as s:
        left = await s.scalar(
            select(func.count()).select_from(Grant).where(Grant.status != GrantStatus.REVOKED)
        )
        total = await s.scalar(select(func.count()).select_from(Grant))
    return bool(total) and left == 0


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
