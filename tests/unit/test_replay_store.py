"""The seen-request store: first insert wins, on one engine or two (replicas), on SQLite and
PostgreSQL; expired rows are purged and never block a key forever."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from storage.db import make_engine
from storage.models import SeenRequest
from storage.replay import first_sighting, purge_seen
from storage.uow import UnitOfWork

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
LATER = T0 + timedelta(minutes=10)


async def sight(uow: UnitOfWork, key: str, *, now: datetime = T0) -> bool:
    async with uow.transaction() as s:
        return await first_sighting(s, key=key, expires_at=now + timedelta(minutes=10), now=now)


async def test_the_first_sighting_wins_across_replicas(db_url: str):
    engines = [make_engine(db_url), make_engine(db_url)]
    try:
        uows = [UnitOfWork(e) for e in engines]
        results = await asyncio.gather(*(sight(uows[i % 2], "v0=abc") for i in range(20)))
        assert sorted(results) == [False] * 19 + [True]
        assert await sight(uows[0], "v0=other") is True
    finally:
        for engine in engines:
            await engine.dispose()


async def test_expired_rows_are_purged_and_do_not_block(db_url: str):
    engine = make_engine(db_url)
    try:
        uow = UnitOfWork(engine)
        assert await sight(uow, "v0=a") and await sight(uow, "v0=b")
        assert not await sight(uow, "v0=a", now=T0 + timedelta(minutes=9))
        # Past its expiry the key counts as new (the sender's own clock check refuses it).
        assert await sight(uow, "v0=a", now=LATER + timedelta(seconds=1))
        async with uow.transaction() as s:
            assert await purge_seen(s, now=LATER + timedelta(seconds=1)) == 1  # only "v0=b"
            left = await s.scalars(select(SeenRequest.key))
            assert list(left) == ["v0=a"]
            assert await s.scalar(select(func.count()).select_from(SeenRequest)) == 1
    finally:
        await engine.dispose()


async def test_group_commit_keeps_first_wins_within_and_across_batches(db_url: str):
    from bot.slack.guards import SeenBatches
    from handlers.clock import FixedClock

    engines = [make_engine(db_url), make_engine(db_url)]
    try:
        replicas = [SeenBatches(uow=UnitOfWork(e), clock=FixedClock(T0)) for e in engines]
        keys = [f"v0={i % 7}" for i in range(60)]  # each key sent several times at once
        results = await asyncio.gather(
            *(replicas[i % 2].first(key, LATER) for i, key in enumerate(keys))
        )
        winners = [key for key, won in zip(keys, results, strict=True) if won]
        assert sorted(winners) == sorted(set(keys))  # exactly one run per request
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_sighting_waits_for_a_writer_holding_sqlites_lock(sqlite_url: str):
    """The guard's insert runs inline only when SQLite's write lock is free; while another
    writer holds it, the insert waits its turn like any write (and still counts once)."""
    from bot.slack.guards import SeenBatches
    from handlers.clock import FixedClock

    engine = make_engine(sqlite_url)
    try:
        uow = UnitOfWork(engine)
        seen = SeenBatches(uow=uow, clock=FixedClock(T0))
        async with uow.transaction() as s:  # BEGIN IMMEDIATE: the write lock is held
            await first_sighting(s, key="v0=held", expires_at=LATER, now=T0)
            waiting = asyncio.ensure_future(seen.first("v0=x", LATER))
            await asyncio.sleep(0.3)
            assert not waiting.done()  # neither refused nor run before the writer is done
        assert await waiting is True
        assert await seen.first("v0=x", LATER) is False  # a replay is still refused
        assert await seen.first("v0=held", LATER) is False
    finally:
        await engine.dispose()
