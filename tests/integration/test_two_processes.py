"""Two processes on one database: no timer and no outbox message is ever acted on twice."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from storage.db import make_engine
from storage.models import AuditEvent, OutboxMessage, Timer
from storage.uow import UnitOfWork
from tests.integration.helpers import N, build_history

ROOT = Path(__file__).resolve().parents[2]


async def check(url: str) -> tuple[int, int, int, int]:
    engine = make_engine(url)
    uow = UnitOfWork(engine)
    async with uow.transaction() as s:
        expired = await s.scalar(select(func.count()).where(AuditEvent.action == "active.expired"))
        undone = await s.scalar(
            select(func.count())
            .select_from(Timer)
            .where(Timer.status != "done", Timer.status != "canceled")
        )
        children = await s.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.transport == "console")
        )
        unsent = await s.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.status.in_(["pending", "sending"]))
        )
    await engine.dispose()
    return int(expired or 0), int(undone or 0), int(children or 0), int(unsent or 0)


async def test_two_processes_never_act_twice(db_url, tmp_path):
    await build_history(db_url)
    start_at = time.time() + 1.5
    outs = [tmp_path / f"w{i}.log" for i in range(2)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "tests/integration/claim_worker.py"),
            db_url,
            f"w{i}",
            str(out),
            str(start_at),
            env=env,
            cwd=str(ROOT),
        )
        for i, out in enumerate(outs)
    ]
    codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), timeout=120)
    assert codes == [0, 0]
    delivered = [line for out in outs if out.exists() for line in out.read_text().split()]
    expired, undone, children, unsent = await check(db_url)
    assert expired == N
    assert undone == 0 and unsent == 0
    # every message: N assigned + N activated + N expired, each delivered exactly once
    assert children == 3 * N
    counts = Counter(delivered)
    assert len(counts) == 3 * N
    assert max(counts.values()) == 1
    # both processes took part (otherwise the test proves nothing)
    assert all(out.exists() and out.read_text() for out in outs)
