"""Batch expiry is exactly-once: a sweeper killed with SIGKILL in the middle of a batch leaves
nothing half done, and the replicas that carry on end every activation once, with its audit
event (the hash chain intact) and its "access ended" message."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from sqlalchemy import func, select

from storage.audit import verify_chain
from storage.db import make_engine
from storage.models import AuditEvent, OutboxMessage, Schedule, Timer
from storage.uow import UnitOfWork
from tests.integration.helpers import N, build_history

ROOT = Path(__file__).resolve().parents[2]
BATCH = 10


async def worker(db_url: str, name: str, marker: Path, stall_on: int) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "tests/integration/expiry_worker.py"),
        db_url,
        name,
        str(marker),
        str(stall_on),
        str(BATCH),
        env=env,
        cwd=str(ROOT),
        stderr=asyncio.subprocess.PIPE,
    )


async def state(db_url: str) -> dict[str, object]:
    engine = make_engine(db_url)
    async with UnitOfWork(engine).transaction() as s:

        def count(stmt):  # type: ignore[no-untyped-def]
            return s.scalar(select(func.count()).select_from(stmt))

        got = {
            "ended": await s.scalar(
                select(func.count()).where(Schedule.kind == "active", Schedule.state == "Expired")
            ),
            "events": await s.scalar(
                select(func.count()).where(AuditEvent.action == "active.expired")
            ),
            "told": await s.scalar(select(func.count()).where(OutboxMessage.kind == "expired")),
            "expire_done": await s.scalar(
                select(func.count()).where(Timer.kind == "expire", Timer.status == "done")
            ),
            "running": await s.scalar(select(func.count()).where(Timer.status == "running")),
            "chain": await verify_chain(s),
        }
    await engine.dispose()
    return got


async def test_a_sweeper_killed_mid_batch_leaves_nothing_half_done(db_url, tmp_path):
    await build_history(db_url)  # N activations whose ends passed an hour ago
    marker = tmp_path / "stalled"
    victim = await worker(db_url, "victim", marker, stall_on=3)
    for _ in range(1200):
        if marker.exists() or victim.returncode is not None:
            break
        await asyncio.sleep(0.05)
    if not marker.exists():
        _, err = await victim.communicate()
        raise AssertionError(f"the worker never reached its third batch: {err.decode()[-3000:]}")
    victim.send_signal(signal.SIGKILL)
    await victim.wait()

    after_kill = await state(db_url)
    # Two batches committed whole; the third, killed before its commit, left no trace.
    assert (
        after_kill["ended"]
        == after_kill["events"]
        == after_kill["told"]
        == after_kill["expire_done"]
    )
    assert 0 < after_kill["ended"] < N  # type: ignore[operator]
    assert after_kill["running"] == 0
    assert after_kill["chain"].ok, after_kill["chain"].reason  # type: ignore[attr-defined]

    # Two replicas carry on together and end every activation exactly once.
    rest = [await worker(db_url, f"r{i}", tmp_path / f"never{i}", stall_on=0) for i in range(2)]
    codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in rest)), timeout=180)
    assert codes == [0, 0]
    final = await state(db_url)
    assert (final["ended"], final["events"], final["told"], final["expire_done"]) == (N, N, N, N)
    assert final["running"] == 0
    assert final["chain"].ok, final["chain"].reason  # type: ignore[attr-defined]
