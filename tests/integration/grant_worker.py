"""One replica for the two-replica grant test: run timers (expiry queues revokes) and the
grant worker with the real webhook provider until nothing is left, noting each call it made."""

from __future__ import annotations

import asyncio
import sys
import time

from bot.grants_worker import GrantsWorker
from bot.providers.webhook import WebhookProvider
from handlers.clock import SystemClock
from handlers.grants.provider import GrantJob
from handlers.timers import lifecycle_actions, run_due_timers
from storage.db import make_engine
from storage.uow import UnitOfWork
from tests.webhookfake import SECRET


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


async def main(url: str, name: str, out: str, start_at: float, until: float) -> None:
    engine = make_engine(url)
    uow, clock = UnitOfWork(engine), SystemClock()
    provider = Noting(out)
    # A small batch, so one replica cannot take everything before the other gets a turn.
    worker = GrantsWorker(uow, clock, {"webhook": provider}, worker=name, batch=4, concurrency=2)
    while time.time() < start_at:
        await asyncio.sleep(0.005)
    while time.time() < until:
        await run_due_timers(uow, clock, worker=name, actions=lifecycle_actions())
        if await worker.run_once() == 0:
            await asyncio.sleep(0.1)
    await provider.close()
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])))
