"""Asking for a role: every rule of Entra PIM's that the README lists, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cards.views import Reply, RolesView
from handlers.activation import ActivationAsk, request_activation
from handlers.commands import Ticket
from handlers.errors import (
    AlreadyActive,
    AlreadyPending,
    DurationOutOfRange,
    JustificationRequired,
    NotEligible,
    TicketRequired,
    UnknownRole,
)
from tests.unit.helpers import ALICE, BOB, CAROL, DAVE, say


async def test_role_without_approval_is_active_at_once(eng):
    reply = await say(eng, BOB, "activate helpdesk-admin 2h reset a locked account")
    assert isinstance(reply, Reply) and reply.ok
    assert reply.text.startswith("Helpdesk Administrator is active now.")
    roles = await say(eng, BOB, "roles")
    assert isinstance(roles, RolesView)
    line = next(r for r in roles.roles if r.role.id == "helpdesk-admin")
    assert line.active_until == (eng.clock.now() + timedelta(hours=2)).isoformat()
    activated = await eng.outbox("activated")
    assert [(to, kind) for to, kind, _ in activated] == [(BOB, "activated")]
    assert "active until 2026-11-27 11:00 UTC" in activated[0][2]["headline"]


async def test_display_name_works_case_insensitively(eng):
    reply = await say(eng, BOB, 'activate "helpdesk ADMINISTRATOR" 30m fixing printers')
    assert reply.ok, reply.text


async def test_role_with_approval_waits_and_cards_go_to_approvers(eng):
    reply = await say(eng, BOB, "activate global-admin 1h rotate the break-glass keys")
    assert reply.ok and "waiting for approval" in reply.text
    req_id = reply.request.id
    cards = await eng.outbox("approval_needed")
    assert [to for to, _, _ in cards] == [CAROL]
    card = cards[0][2]["request"]
    assert card["id"] == req_id and card["justification"] == "rotate the break-glass keys"
    assert card["requester"]["name"] == "Bob Builder"
    submitted = await eng.outbox("submitted")
    assert [to for to, _, _ in submitted] == [BOB]
    assert "waiting for approval (until 2026-11-28 09:00 UTC)" in submitted[0][2]["headline"]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("activate global-admin 9h because", "can be activated for 5m to 8h; you asked for 9h"),
        ("activate global-admin 1m because", "can be activated for 5m to 8h; you asked for 1m"),
        ("activate global-admin 2h", "Global Administrator needs a justification"),
        ("activate billing-admin 1h pay the bill", None),
        ("activate nope 1h x", "No role called 'nope'"),
    ],
)
async def test_refusals_change_nothing(eng, text, error):
    before = await eng.snapshot()
    who = DAVE if "billing" in text else BOB
    reply = await say(eng, who, text)
    assert not reply.ok
    if error:
        assert error in reply.text
    else:
        assert "needs a ticket" in reply.text
    assert "\n" not in reply.text
    assert await eng.snapshot() == before


async def test_not_eligible(eng):
    before = await eng.snapshot()
    with pytest.raises(NotEligible, match="not eligible for Helpdesk Administrator"):
        await request_activation(
            eng.uow,
            eng.clock,
            actor=DAVE,
            ask=ActivationAsk(role="helpdesk-admin", justification="x"),
        )
    assert await eng.snapshot() == before


async def test_typed_errors(eng):
    ask = ActivationAsk
    with pytest.raises(DurationOutOfRange):
        await request_activation(
            eng.uow,
            eng.clock,
            actor=BOB,
            ask=ask(role="helpdesk-admin", duration=timedelta(hours=5), justification="x"),
        )
    with pytest.raises(JustificationRequired):
        await request_activation(eng.uow, eng.clock, actor=BOB, ask=ask(role="helpdesk-admin"))
    with pytest.raises(TicketRequired):
        await request_activation(
            eng.uow, eng.clock, actor=DAVE, ask=ask(role="billing-admin", justification="x")
        )
    with pytest.raises(UnknownRole):
        await request_activation(eng.uow, eng.clock, actor=BOB, ask=ask(role="zzz"))


async def test_ticket_is_recorded(eng):
    view = await request_activation(
        eng.uow,
        eng.clock,
        actor=DAVE,
        ask=ActivationAsk(
            role="billing-admin", justification="quarter close", ticket=Ticket("jira", "FIN-7")
        ),
    )
    assert view.ticket == "jira:FIN-7" and view.status == "PendingApproval"
    # billing-admin names no approvers, so the admin decides
    cards = await eng.outbox("approval_needed")
    assert [to for to, _, _ in cards] == [ALICE]


async def test_no_duplicates_when_active_or_pending(eng):
    await say(eng, BOB, "activate helpdesk-admin 1h first")
    before = await eng.snapshot()
    with pytest.raises(AlreadyActive, match="already active for you until 2026-11-27 10:00 UTC"):
        await request_activation(
            eng.uow,
            eng.clock,
            actor=BOB,
            ask=ActivationAsk(role="helpdesk-admin", justification="again"),
        )
    first = await say(eng, BOB, "activate global-admin 1h one")
    with pytest.raises(AlreadyPending, match=f"{first.request.id} is waiting for approval"):
        await request_activation(
            eng.uow,
            eng.clock,
            actor=BOB,
            ask=ActivationAsk(role="global-admin", justification="two"),
        )
    assert (await eng.snapshot())[0] == before[0] + 1


async def test_default_duration_is_one_hour_capped_at_max(eng):
    reply = await say(eng, BOB, "activate helpdesk-admin fix the printer")
    assert reply.request.duration_seconds == 3600
    assert reply.request.justification == "fix the printer"


async def test_bad_duration_token_is_refused_not_taken_as_justification(eng):
    before = await eng.snapshot()
    reply = await say(eng, BOB, "activate helpdesk-admin 2x fix the printer")
    assert not reply.ok and "not a duration" in reply.text and reply.usage
    assert await eng.snapshot() == before


async def test_later_start_provisions_at_start_time(eng):
    from handlers.timers import lifecycle_actions, run_due_timers

    view = await request_activation(
        eng.uow,
        eng.clock,
        actor=BOB,
        ask=ActivationAsk(
            role="helpdesk-admin",
            duration=timedelta(hours=1),
            justification="night change",
            start_at=eng.clock.now() + timedelta(hours=3),
        ),
    )
    assert view.status == "Granted"
    eng.clock.advance(timedelta(hours=2, minutes=59))
    assert await run_due_timers(eng.uow, eng.clock, worker="t", actions=lifecycle_actions()) == 0
    eng.clock.advance(timedelta(minutes=1))
    assert await run_due_timers(eng.uow, eng.clock, worker="t", actions=lifecycle_actions()) == 1
    roles = await say(eng, BOB, "roles")
    line = next(r for r in roles.roles if r.role.id == "helpdesk-admin")
    assert line.active_until == (eng.clock.now() + timedelta(hours=1)).isoformat()
