"""A sweeping process for the batch-expiry crash test: runs due timers in small batches and,
when told to, stalls inside one batch's transaction (after its work, before its commit)
so that the test can kill it there with SIGKILL."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from handlers.clock import SystemClock
from handlers.endings import expire_due
from handlers.timers import lifecycle_actions, run_due_timers
from storage.db import make_engine
from storage.models import Timer
from storage.uow import UnitOfWork


async def main(url: str, name: str, marker: str, stall_on: int) -> None:
    engine = make_engine(url)
    batches = 0

    async def expire_then_maybe_stall(
        s: AsyncSession, timers: Sequence[Timer], now: datetime
    ) -> None:
        nonlocal batches
        await expire_due(s, timers, now)
        batches += 1
        if batches == stall_on:
            await s.flush()
            Path(marker).write_text(f"{len(timers)}\n")
            await asyncio.sleep(120)  # the test kills us here, mid-transaction

    actions = {**lifecycle_actions(), "expire": expire_then_maybe_stall}
    await run_due_timers(
        UnitOfWork(engine),
        SystemClock(),
        worker=name,
        actions=actions,
        batch=int(sys.argv[5]) if len(sys.argv) > 5 else 10,
    )
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
