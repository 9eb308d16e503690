"""A keyed audit chain: without the key nobody can recompute it, and a checkpoint kept outside
the database catches what recomputing cannot (tail deletion, rewrites by the key holder)."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select, text, update

from bot.config import ConfigError, Settings
from storage.audit import AuditKey, AuditKeyError, append_event, event_hash, verify_chain
from storage.audit_checkpoint import (
    Checkpoint,
    checkpoint_problem,
    current_checkpoint,
    parse_checkpoints,
)
from storage.models import AuditEvent
from storage.uow import UnitOfWork
from tests.unit.conftest import AUDIT_SECRET, T0, Engine
from tests.unit.helpers import history

SECRET = AUDIT_SECRET
KEY = AuditKey.from_text(SECRET)


async def verify(uow: UnitOfWork):
    async with uow.transaction() as s:
        return await verify_chain(s)


async def rewrite(
    uow: UnitOfWork, *, row_id: int, key: AuditKey | None, key_id: str | None = "same"
) -> None:
    """What an attacker with write access does: edit a row, then recompute every later hash
    (with the key if they have one) so each link agrees again."""
    async with uow.transaction() as s:
        await s.execute(
            update(AuditEvent).where(AuditEvent.id == row_id).values(actor="mallory@contoso.com")
        )
        rows = (
            await s.scalars(
                select(AuditEvent).where(AuditEvent.id >= row_id).order_by(AuditEvent.id)
            )
        ).all()
        prev = await s.scalar(select(AuditEvent.hash).where(AuditEvent.id == row_id - 1))
        for row in rows:
            new_key_id = row.key_id if key_id == "same" else key_id
            row_hash = event_hash(
                id=row.id,
                at=row.at,
                actor=row.actor,
                action=row.action,
                target=row.target,
                details=row.details,
                prev_hash=prev,
                key=key,
            )
            await s.execute(
                update(AuditEvent)
                .where(AuditEvent.id == row.id)
                .values(prev_hash=prev, hash=row_hash, key_id=new_key_id)
            )
            prev = row_hash


async def checkpoint(uow: UnitOfWork) -> Checkpoint:
    async with uow.transaction() as s:
        return await current_checkpoint(s)


async def problem(uow: UnitOfWork, cp: Checkpoint) -> str | None:
    async with uow.transaction() as s:
        return await checkpoint_problem(s, cp)


async def test_a_keyed_chain_verifies_and_holds_no_secret(keyed: Engine) -> None:
    await history(keyed)
    result = await verify(keyed.uow)
    assert result.ok and result.first_keyed == 1 and result.checked > 5
    async with keyed.uow.transaction() as s:
        ids = set((await s.scalars(select(AuditEvent.key_id))).all())
        dump = str((await s.execute(text("SELECT * FROM audit_events"))).all())
    assert ids == {KEY.key_id}
    assert SECRET not in dump and SECRET not in repr(KEY)


@pytest.mark.parametrize("forged_key_id", ["same", None], ids=["keep-key-id", "drop-key-id"])
async def test_rewrite_without_the_key_is_caught(keyed: Engine, forged_key_id) -> None:
    await history(keyed)
    await rewrite(keyed.uow, row_id=3, key=None, key_id=forged_key_id)
    result = await verify(keyed.uow)
    assert not result.ok and result.broken_id == 3 and result.checked == 2


async def test_rewrite_with_a_guessed_key_is_caught(keyed: Engine) -> None:
    await history(keyed)
    await rewrite(keyed.uow, row_id=4, key=AuditKey.from_text("guess"), key_id=KEY.key_id)
    result = await verify(keyed.uow)
    assert not result.ok and result.broken_id == 4 and "edited" in result.reason


async def test_a_checkpoint_catches_a_rewrite_by_the_key_holder(keyed: Engine) -> None:
    await history(keyed)
    cp = await checkpoint(keyed.uow)
    await rewrite(keyed.uow, row_id=3, key=KEY)
    assert (await verify(keyed.uow)).ok  # the rows agree with each other again...
    assert await problem(keyed.uow, cp) == (  # ...but not with the copy kept outside
        f"event {cp.seq} no longer has the checkpoint's hash: the log was rewritten up to it"
    )


async def test_a_checkpoint_catches_tail_deletion(keyed: Engine) -> None:
    await history(keyed)
    cp = await checkpoint(keyed.uow)
    assert await problem(keyed.uow, cp) is None
    async with keyed.uow.transaction() as s:
        await s.execute(delete(AuditEvent).where(AuditEvent.id > cp.seq - 2))
    assert (await verify(keyed.uow)).ok
    assert await problem(keyed.uow, cp) == (
        f"event {cp.seq} of the checkpoint is gone and the log ends at event {cp.seq - 2}: "
        "events were deleted at the tail"
    )


async def test_later_events_keep_reaching_an_older_checkpoint(keyed: Engine) -> None:
    cp = await checkpoint(keyed.uow)
    await history(keyed)
    assert (await checkpoint(keyed.uow)).seq > cp.seq
    assert await problem(keyed.uow, cp) is None
    assert parse_checkpoints(f"saved digest\n  {cp.line()}  \nmore") == [cp]


async def test_an_unkeyed_log_continues_keyed_and_pins_what_came_before(eng: Engine) -> None:
    await history(eng)  # written before anyone set a key
    unkeyed_head = (await checkpoint(eng.uow)).seq
    keyed_uow = UnitOfWork(eng.uow.engine, audit_key=KEY)
    async with keyed_uow.transaction() as s:
        await append_event(s, at=T0, actor="pim-bot", action="probe", target="x")
    result = await verify(keyed_uow)
    assert result.ok and result.first_keyed == unkeyed_head + 1

    # Rewriting the unkeyed part and recomputing it no longer passes: the first keyed row's
    # HMAC covers its prev_hash, and only the key could sign the new one.
    await rewrite(keyed_uow, row_id=2, key=None)
    broken = await verify(keyed_uow)
    assert not broken.ok and broken.broken_id == unkeyed_head + 1


async def test_no_one_appends_unkeyed_or_under_another_key_after_the_switch(eng: Engine) -> None:
    keyed_uow = UnitOfWork(eng.uow.engine, audit_key=KEY)
    async with keyed_uow.transaction() as s:
        await append_event(s, at=T0, actor="pim-bot", action="probe", target="x")
    before = await eng.count(AuditEvent)
    for uow in (eng.uow, UnitOfWork(eng.uow.engine, audit_key=AuditKey.from_text("other"))):
        with pytest.raises(AuditKeyError, match=f"keyed with key id {KEY.key_id}"):
            async with uow.transaction() as s:
                await append_event(s, at=T0, actor="pim-bot", action="probe", target="y")
    assert await eng.count(AuditEvent) == before
    unkeyed = await verify(eng.uow)  # verifying without the key says which key it needs
    assert not unkeyed.ok and unkeyed.needs_key == KEY.key_id


def test_the_key_is_configured_but_never_shown() -> None:
    settings = Settings.from_env({"PIM_AUDIT_KEY": SECRET})
    assert settings.audit_key == SECRET and SECRET not in repr(settings)
    with pytest.raises(ConfigError) as short:
        Settings.from_env({"PIM_AUDIT_KEY": "hunter2"})
    assert "hunter2" not in str(short.value)
    assert str(short.value).startswith("PIM_AUDIT_KEY must be at least 16 characters")
