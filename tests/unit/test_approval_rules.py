"""Deciding on requests: first decision wins, no self-approval, refusals audited."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from handlers.approval import decide
from handlers.errors import AlreadyDecided
from handlers.settings import RoleSettings
from storage.models import AuditEvent, Role
from tests.unit.helpers import ALICE, BOB, CAROL, DAVE, say


async def ask_global(eng, who=BOB) -> str:
    reply = await say(eng, who, "activate global-admin 2h rotate keys")
    assert reply.ok, reply.text
    return reply.request.id


async def audit_actions(eng) -> list[tuple[str, str]]:
    async with eng.uow.transaction() as s:
        rows = (await s.scalars(select(AuditEvent).order_by(AuditEvent.id))).all()
        return [(e.actor, e.action) for e in rows]


async def test_approve_activates_and_tells_everyone(eng):
    rid = await ask_global(eng)
    eng.clock.advance(timedelta(minutes=3))
    reply = await say(eng, CAROL, f"approve {rid} looks right")
    assert reply.ok and reply.text == f"You approved {rid}: Bob Builder gets Global Administrator."
    approved = await eng.outbox("approved")
    assert [to for to, _, _ in approved] == [BOB]
    assert approved[0][2]["headline"] == (
        f"Carol Chen approved your request {rid} for Global Administrator."
    )
    update = await eng.outbox("request_update")
    assert update[0][0] is None
    assert update[0][2]["headline"].startswith("Approved by Carol Chen at 2026-11-27 09:03 UTC")
    activated = await eng.outbox("activated")
    assert "active until 2026-11-27 11:03 UTC" in activated[0][2]["headline"]
    assert (CAROL, "request.approved") in await audit_actions(eng)


async def test_approver_justification_required_when_role_asks(eng):
    rid = await ask_global(eng)
    before = await eng.snapshot()
    reply = await say(eng, CAROL, f"approve {rid}")
    assert not reply.ok and "asks approvers for a reason" in reply.text
    assert await eng.snapshot() == before


async def test_deny_needs_reason_and_tells_requester(eng):
    rid = await ask_global(eng)
    bad = await say(eng, CAROL, f"deny {rid}")
    assert not bad.ok
    reply = await say(eng, CAROL, f"deny {rid} use the helpdesk role instead")
    assert reply.ok
    denied = await eng.outbox("denied")
    assert denied[0][0] == BOB
    assert denied[0][2]["headline"].endswith("Reason: use the helpdesk role instead")
    roles = await say(eng, BOB, "roles")
    assert all(r.active_until is None for r in roles.roles if r.role.id == "global-admin")


async def test_self_approval_is_refused_and_audited(eng):
    # Carol is the only approver of global-admin; her own request goes to the admins.
    rid = await ask_global(eng, who=CAROL)
    cards = await eng.outbox("approval_needed")
    assert [to for to, _, _ in cards] == [ALICE]
    requests_before = (await eng.snapshot())[0]
    reply = await say(eng, CAROL, f"approve {rid} me")
    assert not reply.ok and reply.text == f"You cannot approve your own request {rid}."
    assert (await eng.snapshot())[0] == requests_before
    assert (await audit_actions(eng))[-1] == (CAROL, "approval.refused")
    ok = await say(eng, ALICE, f"approve {rid} fine")
    assert ok.ok


async def test_non_approver_is_refused_privately_and_audited(eng):
    rid = await ask_global(eng)
    reply = await say(eng, DAVE, f"approve {rid} sure")
    assert not reply.ok
    assert (
        reply.text
        == f"You are not an approver for Global Administrator, so you cannot approve {rid}."
    )
    # admins are only the fallback: with a named approver, Alice may not decide either
    reply = await say(eng, ALICE, f"deny {rid} no")
    assert not reply.ok and "not an approver" in reply.text
    assert (await audit_actions(eng))[-2:] == [
        (DAVE, "approval.refused"),
        (ALICE, "approval.refused"),
    ]
    assert not await eng.outbox("approved") and not await eng.outbox("denied")


async def test_second_decision_is_told_who_decided(eng):
    rid = await ask_global(eng)
    async with eng.uow.transaction() as s:  # a second approver
        role = await s.get(Role, "global-admin")
        role.settings = RoleSettings.from_mapping(
            {"require_approval": True, "approvers": ["carol@contoso.com", "alice@contoso.com"]}
        ).to_mapping()
    assert (await say(eng, ALICE, f"approve {rid} ok")).ok
    late = await say(eng, CAROL, f"deny {rid} no")
    assert not late.ok
    assert late.text.startswith(f"{rid} is already decided: Approved by Alice Admin at ")


async def test_concurrent_clicks_first_wins(eng):
    rid = await ask_global(eng)
    async with eng.uow.transaction() as s:
        role = await s.get(Role, "global-admin")
        role.settings = RoleSettings.from_mapping(
            {
                "require_approval": True,
                "approvers": ["carol@contoso.com", "alice@contoso.com", "dave@contoso.com"],
            }
        ).to_mapping()
    results = await asyncio.gather(
        *[
            decide(
                eng.uow, eng.clock, actor=who, request_id=rid, approve=approve, justification="go"
            )
            for who, approve in [(CAROL, True), (ALICE, False), (DAVE, True)] * 3
        ],
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, Exception)]
    losers = [r for r in results if isinstance(r, Exception)]
    assert len(winners) == 1
    assert all(isinstance(e, AlreadyDecided) for e in losers), losers
    decisions = [
        a for _, a in await audit_actions(eng) if a in ("request.approved", "request.denied")
    ]
    assert len(decisions) == 1
    outcome = await eng.outbox("approved") + await eng.outbox("denied")
    assert len(outcome) == 1
    assert len(await eng.outbox("activated")) == (1 if decisions[0] == "request.approved" else 0)


async def test_unknown_request(eng):
    reply = await say(eng, CAROL, "approve R-ZZZZ fine")
    assert not reply.ok and reply.text == "There is no request R-ZZZZ."


@pytest.mark.parametrize("canceller", [BOB, ALICE])
async def test_cancel_by_requester_or_admin(eng, canceller):
    rid = await ask_global(eng)
    reply = await say(eng, canceller, f"cancel {rid}")
    assert reply.ok and reply.text == f"Request {rid} for Global Administrator is canceled."
    update = await eng.outbox("request_update")
    assert update[-1][2]["request"]["status"] == "Canceled"
    late = await say(eng, CAROL, f"approve {rid} ok")
    assert not late.ok and "already decided" in late.text
    if canceller == ALICE:
        told = await eng.outbox("canceled")
        assert [to for to, _, _ in told] == [BOB]


async def test_cancel_by_someone_else_is_refused(eng):
    rid = await ask_global(eng)
    before = await eng.snapshot()
    reply = await say(eng, DAVE, f"cancel {rid}")
    assert not reply.ok and reply.text == f"{rid} is not yours to cancel."
    assert await eng.snapshot() == before
