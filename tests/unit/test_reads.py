"""Reads never wait for a writer: `/pim roles`,
the forms and the identity lookup answer while another connection holds the write lock, and
a read transaction refuses to write."""

from __future__ import annotations

import asyncio
from contextlib import nullcontext

import pytest
from sqlalchemy import update

from handlers.chat import command_table, run_text
from handlers.digest.report import DigestOptions
from handlers.identity import email_for
from handlers.queries import activation_form, my_requests, my_roles
from storage.models import Principal
from storage.uow import ReadOnlyViolation
from tests.unit.conftest import write_lock

BOB = "bob@contoso.com"


async def test_reads_answer_while_another_connection_holds_the_write_lock(eng, db_url):
    async with eng.uow.transaction() as s:
        await s.execute(update(Principal).where(Principal.email == BOB).values(slack_id="U0BOB"))
    # PostgreSQL readers never wait for writers; SQLite's would, in BEGIN IMMEDIATE.
    with write_lock(db_url) if db_url.startswith("sqlite") else nullcontext():
        await _read_everything(eng)


# A read that waited for the writer would sit out a busy timeout (30 s for the async engine);
# this bound tells the two apart with room to spare on a loaded CI machine (-n 4, 2 cores).
PROMPT = 15


async def _read_everything(eng) -> None:  # type: ignore[no-untyped-def]
    roles = await asyncio.wait_for(my_roles(eng.uow, actor=BOB), PROMPT)
    assert [line.role.id for line in roles.roles] == ["global-admin", "helpdesk-admin", "quick"]
    assert roles.person.name == "Bob Builder"
    form = await asyncio.wait_for(activation_form(eng.uow, actor=BOB), PROMPT)
    assert [line.role.id for line in form.roles] == ["global-admin", "helpdesk-admin", "quick"]
    pending = await asyncio.wait_for(my_requests(eng.uow, actor=BOB), PROMPT)
    assert pending.requests == ()
    found = await asyncio.wait_for(email_for(eng.uow, platform="slack", user_id="U0BOB"), PROMPT)
    assert found == BOB


async def test_a_read_refuses_to_write(eng):
    with pytest.raises(ReadOnlyViolation):
        async with eng.uow.read() as s:
            bob = await s.get(Principal, 2)
            assert bob is not None
            bob.display_name = "Someone else"
            await s.flush()
    async with eng.uow.read() as s:
        bob = await s.get(Principal, 2)
        assert bob is not None and bob.display_name == "Bob Builder"


async def test_roles_show_what_is_active_and_pending(eng):
    commands = command_table(digest=DigestOptions())
    fixed = await run_text(
        eng.uow, eng.clock, commands=commands, actor=BOB, text="activate helpdesk-admin 1h fix"
    )
    assert fixed.ok, fixed.text
    reply = await run_text(
        eng.uow, eng.clock, commands=commands, actor=BOB, text="activate global-admin 1h audit"
    )
    assert reply.ok, reply.text
    lines = {line.role.id: line for line in (await my_roles(eng.uow, actor=BOB)).roles}
    assert lines["helpdesk-admin"].active_until is not None
    assert lines["helpdesk-admin"].member_type == "Activated"
    assert lines["helpdesk-admin"].max_duration_seconds == 4 * 3600
    assert lines["global-admin"].active_until is None
    assert lines["global-admin"].requires_approval
    assert lines["global-admin"].pending_request == reply.request.id
    assert lines["quick"].pending_request is None and lines["quick"].active_until is None
