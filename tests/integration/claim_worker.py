"""One worker process for the two-process claim test: sweep timers and deliver the outbox
until nothing is left, recording every delivery it made to a file."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from bot.outbox import Delivery, OutboxWorker, Recipient
from handlers.clock import SystemClock
from handlers.timers import lifecycle_actions, run_due_timers
from storage.db import make_engine
from storage.uow import UnitOfWork


class FileTransport:
    name = "console"

    def __init__(self, path: str) -> None:
        self.path = path

    def reaches(self, recipient: Recipient | None, channel: dict[str, str] | None) -> bool:
        return recipient is not None

    async def send(self, delivery: Delivery) -> dict[str, Any] | None:
        with open(self.path, "a") as f:
            f.write(f"{delivery.id}\n")
        await asyncio.sleep(0.01)  # a network call: the database is free meanwhile
        return None

    async def update(self, delivery: Delivery) -> None:
        await self.send(delivery)


async def main(url: str, name: str, out: str, start_at: float) -> None:
    engine = make_engine(url)
    uow, clock = UnitOfWork(engine), SystemClock()
    # Few sends at once, so one process cannot drain everything before the other gets a turn.
    worker = OutboxWorker(uow, clock, [FileTransport(out)], worker=name, batch=10, concurrency=2)
    while time.time() < start_at:
        await asyncio.sleep(0.005)
    idle = 0
    while idle < 3:
        ran = await run_due_timers(uow, clock, worker=name, batch=5, actions=lifecycle_actions())
        sent = await worker.run_once()
        idle = idle + 1 if ran == 0 and sent == 0 else 0
        await asyncio.sleep(0.05)
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
