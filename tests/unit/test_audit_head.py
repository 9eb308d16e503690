"""An append chains onto the head this process last committed without reading it; whenever
another process appended since, or its own append was rolled back, the chain still links."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import delete, event, func, select

from handlers.activation import ActivationAsk, request_activation
from handlers.approval import decide
from handlers.assignment import grant_schedule
from storage.audit import NewEvent, append_events, verify_chain
from storage.db import make_engine
from storage.models import AuditEvent, Principal, Role
from storage.uow import UnitOfWork
from tests.unit.conftest import T0

BOB, CAROL = "bob@contoso.com", "carol@contoso.com"


def _ask(role: str = "quick") -> ActivationAsk:
    return ActivationAsk(role=role, duration=timedelta(seconds=30))


async def _chain(uow: UnitOfWork) -> tuple[bool, str, int, list[str]]:
    async with uow.transaction() as s:
        result = await verify_chain(s)
        actions = (await s.scalars(select(AuditEvent.action).order_by(AuditEvent.id))).all()
    return result.ok, result.reason, result.checked, list(actions)


async def _event(uow: UnitOfWork, action: str, *, fail: bool = False) -> None:
    async with uow.transaction() as s:
        await append_events(s, [NewEvent(at=T0, actor="test", action=action, target="t")])
        if fail:
            raise RuntimeError("rolled back after the append")


async def test_two_processes_appending_in_turn_keep_one_chain(eng, db_url):
    other_engine = make_engine(db_url)
    other = UnitOfWork(other_engine)
    try:
        await _event(eng.uow, "one")  # this process now knows the head
        await _event(other, "two")  # ...which the other process moved on
        await _event(eng.uow, "three")  # chained onto "two", not onto its stale "one"
        await _event(eng.uow, "four")
        await _event(other, "five")
        ok, reason, checked, actions = await _chain(eng.uow)
    finally:
        await other_engine.dispose()
    assert ok, reason
    assert actions[-5:] == ["one", "two", "three", "four", "five"]
    assert checked == len(actions)


async def test_a_rolled_back_append_leaves_no_gap(eng):
    await _event(eng.uow, "kept")
    with pytest.raises(RuntimeError):
        await _event(eng.uow, "lost", fail=True)
    await _event(eng.uow, "next")
    ok, reason, _, actions = await _chain(eng.uow)
    assert ok, reason
    assert actions[-2:] == ["kept", "next"] and "lost" not in actions


async def test_a_removed_head_is_not_chained_onto(eng):
    """The newest event removed behind the process's back: the next append links to the row
    that is the head now, and verification still reports the removal nowhere (nothing is
    missing in the middle) but a checkpoint would (storage.audit_checkpoint)."""
    await _event(eng.uow, "kept")
    await _event(eng.uow, "removed")
    async with eng.uow.transaction() as s:
        await s.execute(
            delete(AuditEvent).where(
                AuditEvent.id == select(func.max(AuditEvent.id)).scalar_subquery()
            )
        )
    await _event(eng.uow, "after")
    ok, reason, _, actions = await _chain(eng.uow)
    assert ok, reason
    assert actions[-2:] == ["kept", "after"]


async def test_concurrent_asks_from_two_processes_keep_one_chain(eng, db_url):
    """Twenty people ask at once, through two processes sharing the database; everyone's
    events are in the chain once and it verifies."""
    async with eng.uow.transaction() as s:
        role = await s.get(Role, "quick")
        for i in range(20):
            p = Principal(email=f"p{i}@contoso.com", display_name=f"P {i}", created_at=T0)
            s.add(p)
            await s.flush()
            await grant_schedule(
                s, actor="seed", principal=p, role=role, kind="eligible", end=None, now=T0
            )
    other_engine = make_engine(db_url)
    other = UnitOfWork(other_engine)
    try:
        views = await asyncio.gather(
            *(
                request_activation(
                    (eng.uow, other)[i % 2], eng.clock, actor=f"p{i}@contoso.com", ask=_ask()
                )
                for i in range(20)
            )
        )
        ok, reason, checked, actions = await _chain(eng.uow)
    finally:
        await other_engine.dispose()
    assert {v.status for v in views} == {"Provisioned"}
    assert ok, reason
    assert actions.count("request.created") == actions.count("role.activated") == 20
    assert checked == len(actions)


async def test_asking_and_approving_after_another_process_wrote_keeps_the_chain(eng, db_url):
    other_engine = make_engine(db_url)
    other = UnitOfWork(other_engine)
    try:
        asked = await request_activation(
            eng.uow,
            eng.clock,
            actor=BOB,
            ask=ActivationAsk(
                role="global-admin", duration=timedelta(hours=1), justification="rotate keys"
            ),
        )
        await _event(other, "elsewhere")
        done = await decide(
            eng.uow, eng.clock, actor=CAROL, request_id=asked.id, approve=True, justification="ok"
        )
        ok, reason, _, actions = await _chain(other)
    finally:
        await other_engine.dispose()
    assert done.status == "Provisioned"
    assert ok, reason
    assert actions[-4:] == ["request.created", "elsewhere", "request.approved", "role.activated"]


async def test_a_batch_after_a_known_head_chains_on(eng):
    """A batch (expiries) is too many rows to guard: it reads the head, and links on."""
    await _event(eng.uow, "before")
    async with eng.uow.transaction() as s:
        await append_events(
            s, [NewEvent(at=T0, actor="test", action=f"batch{i}", target="t") for i in range(50)]
        )
    await _event(eng.uow, "after")
    ok, reason, _, actions = await _chain(eng.uow)
    assert ok, reason
    assert actions[-52:] == ["before", *(f"batch{i}" for i in range(50)), "after"]


async def test_the_chat_engine_knows_the_head_the_main_one_wrote(eng, db_url):
    """A process's units of work on one database (chat's, the sweeper's) share the head, so
    chat's next append does not read it again after the sweeper wrote."""
    chat_engine = make_engine(db_url)
    chat = UnitOfWork(chat_engine, queued_with=eng.uow)
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_rest) -> None:  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(chat_engine.sync_engine, "before_cursor_execute", count)
    try:
        await _event(eng.uow, "sweeper")
        await _event(chat, "chat")
        ok, reason, _, actions = await _chain(eng.uow)
    finally:
        event.remove(chat_engine.sync_engine, "before_cursor_execute", count)
        await chat_engine.dispose()
    assert ok, reason
    assert actions[-2:] == ["sweeper", "chat"]
    assert not [s for s in seen if "ORDER BY audit_events.id DESC" in s], seen
