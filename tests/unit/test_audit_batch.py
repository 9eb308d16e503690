"""Batch appends: many events in one transaction keep the chain intact, and roll back whole."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from storage.audit import NewEvent, append_event, append_events, verify_chain
from storage.models import AuditEvent
from tests.unit.conftest import T0


def expiry(n: int) -> NewEvent:
    return NewEvent(
        at=T0 + timedelta(seconds=n),
        actor="pim-bot",
        action="role.expired",
        target=f"user{n}@contoso.com/quick",
        details={"n": n},
    )


async def test_a_batch_lands_in_order_and_verifies(eng) -> None:
    async with eng.uow.transaction() as s:
        before = await s.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))
        rows = await append_events(s, [expiry(n) for n in range(50)])
    assert [r.id for r in rows] == list(range(before + 1, before + 51))
    async with eng.uow.transaction() as s:
        stored = (
            await s.scalars(
                select(AuditEvent).where(AuditEvent.id > before).order_by(AuditEvent.id)
            )
        ).all()
        result = await verify_chain(s)
    assert [e.details["n"] for e in stored] == list(range(50))
    assert all(b.prev_hash == a.hash for a, b in zip(stored, stored[1:], strict=False))
    assert result.ok and result.checked == before + 50


async def test_an_empty_batch_writes_nothing(eng) -> None:
    before = await eng.count(AuditEvent)
    async with eng.uow.transaction() as s:
        assert await append_events(s, []) == []
    assert await eng.count(AuditEvent) == before


async def test_a_failed_transaction_leaves_no_part_of_the_batch(eng) -> None:
    before = await eng.count(AuditEvent)
    with pytest.raises(RuntimeError):
        async with eng.uow.transaction() as s:
            await append_events(s, [expiry(n) for n in range(10)])
            raise RuntimeError("the expiry job failed half way")
    assert await eng.count(AuditEvent) == before
    async with eng.uow.transaction() as s:
        assert (await verify_chain(s)).ok


async def test_concurrent_batches_and_single_appends_chain_without_forks(eng) -> None:
    """On PostgreSQL the advisory lock serialises appenders; on SQLite the write lock does."""

    async def batch(k: int) -> None:
        async with eng.uow.transaction() as s:
            await append_events(s, [expiry(100 * k + n) for n in range(20)])

    async def single(k: int) -> None:
        async with eng.uow.transaction() as s:
            await append_event(s, at=T0, actor="bob@contoso.com", action="probe", target=str(k))

    before = await eng.count(AuditEvent)
    await asyncio.gather(*(batch(k) for k in range(4)), *(single(k) for k in range(4)))
    assert await eng.count(AuditEvent) == before + 84
    async with eng.uow.transaction() as s:
        result = await verify_chain(s)
    assert result.ok, result
