"""The directory sync runs once per period however many replicas run it: two runtimes on one
database (SQLite and PostgreSQL), each with its own engine, APScheduler and directory readers
(the real ones, against the fakes), firing every second for a few seconds."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.config import Settings
from bot.periodic import PeriodicJob
from bot.runtime import Runtime
from handlers.clock import FixedClock
from handlers.directory_sync import sync_directory
from handlers.periodic import period_key
from handlers.policy import apply_policy
from storage.models import AuditEvent, Timer
from tests.directory.conftest import GROUP
from vocab.states import TimerStatus


def counting(readers, calls: Counter, name: str):
    def reader(kind: str, ref: str):
        calls[name] += 1
        return readers(kind, ref)

    return reader


async def test_two_replicas_sync_each_period_exactly_once(db_url, eng, ms, readers):
    await apply_policy(eng.uow, eng.clock, text=f"directory: [{{entra_group: {GROUP}}}]")
    ms.graph.add_user("u-ann", mail="ann@contoso.com", name="Ann Archer")
    ms.graph.add_group_member(GROUP, "u-ann")
    settings = Settings.from_env(
        {"DATABASE_URL": db_url, "PIM_DIRECTORY_SYNC_INTERVAL": "1s", "PIM_SWEEP_SECONDS": "60"}
    )
    calls: Counter[str] = Counter()
    replicas = [Runtime.build(settings) for _ in range(2)]
    for name, runtime in zip("ab", replicas, strict=True):
        runtime.directory = counting(readers, calls, name)
    started = datetime.now(UTC)
    for runtime in replicas:
        runtime.start_background([])
    await asyncio.sleep(4.5)
    for runtime in replicas:
        await runtime.close()

    async with eng.uow.read() as s:
        periods = list(
            await s.execute(select(Timer.key, Timer.status).where(Timer.kind == "directory_sync"))
        )
        created = list(
            await s.scalars(
                select(AuditEvent.target).where(AuditEvent.action == "directory.principal.created")
            )
        )
    keys = [k for k, _ in periods]
    assert len(keys) == len(set(keys)) >= 4  # one row per period, a period each second
    assert all(status == TimerStatus.DONE for _, status in periods)
    assert sum(calls.values()) == len(keys)  # each period's sync ran on one replica only
    assert created == ["ann@contoso.com"]  # and the person was created once
    assert min(keys) >= period_key(
        "directory_sync", started.replace(microsecond=0) - timedelta(seconds=1)
    )


async def test_many_firings_in_one_period_run_the_work_once(db_url, eng):
    """Both replicas fire at once, again and again, in the same period: one run per period."""
    from storage.db import make_engine
    from storage.uow import UnitOfWork

    engines = [make_engine(db_url) for _ in range(2)]
    ran: list[str] = []
    clock = FixedClock(datetime(2026, 11, 30, 14, 0, 5, tzinfo=UTC))

    def job(uow: UnitOfWork, name: str) -> PeriodicJob:
        async def work() -> None:
            ran.append(name)
            await asyncio.sleep(0.05)  # the other replica fires meanwhile
            await sync_directory(uow, clock, readers=lambda kind, ref: None)

        return PeriodicJob(
            uow, clock, kind="reconcile", interval=timedelta(minutes=15), work=work, worker=name
        )

    jobs = [job(UnitOfWork(e), name) for e, name in zip(engines, "ab", strict=True)]
    try:
        for _ in range(2):  # two periods
            results = await asyncio.gather(*(j.fire() for j in jobs for _ in range(5)))
            assert sum(results) == 1
            clock.advance(timedelta(minutes=15))
    finally:
        for e in engines:
            await e.dispose()
    assert len(ran) == 2
