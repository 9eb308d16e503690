"""Renew (selfRenew) and adminExtend for assignments nearing their end (issue 12, item 14)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from cards.text import render
from cards.views import Notification
from handlers.commands import ExtendAssignment, Renew, UserRef
from handlers.grammar import CommandError, parse_command
from handlers.timers import lifecycle_actions, run_due_timers
from storage.db import make_engine
from storage.models import AuditEvent, Schedule, ScheduleRequest, Timer
from storage.uow import UnitOfWork
from tests.unit.conftest import T0, Engine
from tests.unit.helpers import ALICE, BOB, CAROL, DAVE, say
from vocab.states import Action, ScheduleKind, ScheduleState, Status, TimerStatus

DAY = timedelta(days=1)


async def _eligible_end(eng: Engine, who_id: int = 4) -> object:
    async with eng.uow.transaction() as s:
        return await s.scalar(
            select(Schedule.end_at).where(
                Schedule.principal_id == who_id,
                Schedule.role_id == "helpdesk-admin",
                Schedule.kind == ScheduleKind.ELIGIBLE,
                Schedule.state == ScheduleState.ACTIVE,
            )
        )


async def _pending_timers(eng: Engine) -> list[tuple[str, object]]:
    async with eng.uow.transaction() as s:
        return sorted(
            (t.kind, t.due_at)
            for t in (
                await s.scalars(
                    select(Timer).where(
                        Timer.status == TimerStatus.PENDING, Timer.kind.in_(["renew", "expire"])
                    )
                )
            ).all()
        )


async def _actions(eng: Engine) -> list[str]:
    async with eng.uow.transaction() as s:
        return [e.action for e in (await s.scalars(select(AuditEvent).order_by(AuditEvent.id)))]


async def _run(eng: Engine) -> None:
    await run_due_timers(eng.uow, eng.clock, worker="t", actions=lifecycle_actions())


def test_renew_and_extend_assignment_parse() -> None:
    assert parse_command("renew helpdesk-admin") == Renew("helpdesk-admin")
    assert parse_command("renew helpdesk-admin 30d still on call") == Renew(
        "helpdesk-admin", 30 * DAY, "still on call"
    )
    assert parse_command(
        "extend-assignment dave@contoso.com helpdesk-admin 30d"
    ) == ExtendAssignment(UserRef("email", "dave@contoso.com"), "helpdesk-admin", None, 30 * DAY)
    got = parse_command(
        "extend-assignment dave@contoso.com helpdesk-admin eligible until 2027-06-30 audit season"
    )
    assert isinstance(got, ExtendAssignment) and got.kind == ScheduleKind.ELIGIBLE
    assert got.until is not None and got.until.isoformat() == "2027-06-30T00:00:00+00:00"
    assert got.justification == "audit season"
    for text, message in [
        ("renew", "renew needs a role. Usage: renew ROLE [DURATION] [JUSTIFICATION…]"),
        (
            "extend-assignment dave@contoso.com helpdesk-admin",
            "extend-assignment needs a DURATION or until DATE. Usage: extend-assignment USER ROLE "
            "[eligible|active] DURATION|until DATE [JUSTIFICATION…]",
        ),
    ]:
        try:
            parse_command(text)
        except CommandError as err:
            assert str(err) == message
        else:
            raise AssertionError(text)


async def test_the_holder_is_offered_renew_and_admins_extend_once(eng: Engine) -> None:
    await say(eng, ALICE, "assign dave@contoso.com helpdesk-admin eligible 30d on call")
    assert await _pending_timers(eng) == [("expire", T0 + 30 * DAY), ("renew", T0 + 16 * DAY)]
    eng.clock.set(T0 + 16 * DAY)
    await _run(eng)
    await _run(eng)  # exactly once: a second run finds nothing due
    holder = await eng.outbox("renewable")
    assert [(e, p["headline"]) for e, k, p in holder] == [
        (DAVE, "Your eligibility for Helpdesk Administrator ends in 14d (at 2026-12-27 09:00 UTC).")
    ]
    text = render(Notification.from_dict(holder[0][2]))
    assert text.endswith("→ more time: renew helpdesk-admin [DURATION]")
    admins = await eng.outbox("assignment_ending")
    assert [e for e, k, p in admins] == [ALICE]
    assert render(Notification.from_dict(admins[0][2])).endswith(
        "→ extend: extend-assignment dave@contoso.com helpdesk-admin eligible DURATION|until DATE"
    )
    assert (await _actions(eng)).count("assignment.renewal_offered") == 1


async def test_renew_is_a_request_admins_decide(eng: Engine) -> None:
    await say(eng, ALICE, "assign dave@contoso.com helpdesk-admin eligible 30d on call")
    eng.clock.set(T0 + 20 * DAY)
    out = render(await say(eng, DAVE, "renew helpdesk-admin 60d still on call"))
    assert "to renew Helpdesk Administrator is waiting for an admin's approval" in out
    rid = out.split()[1]
    again = render(await say(eng, DAVE, "renew helpdesk-admin"))
    assert again.startswith(f"✗ You already asked to renew Helpdesk Administrator: {rid}")
    card = [p for e, k, p in await eng.outbox("approval_needed") if e == ALICE][-1]
    assert card["headline"] == (
        "Dave Duty asks to renew their eligibility for Helpdesk "
        "Administrator by 60d (until 2027-02-25 09:00 UTC)."
    )
    before = await eng.snapshot()
    refused = render(await say(eng, CAROL, f"approve {rid} sure"))
    assert refused.startswith("✗ You are not an approver for Helpdesk Administrator")
    assert await _eligible_end(eng) == T0 + 30 * DAY  # not yet
    assert (await eng.snapshot())[0] == before[0]
    approved = render(await say(eng, ALICE, f"approve {rid} fine"))
    assert approved.startswith(f"You approved {rid}")
    assert await _eligible_end(eng) == T0 + 90 * DAY
    assert await _pending_timers(eng) == [("expire", T0 + 90 * DAY), ("renew", T0 + 76 * DAY)]
    told = [p["headline"] for e, k, p in await eng.outbox("assigned") if e == DAVE]
    assert told[-1] == (
        "Your eligibility for Helpdesk Administrator is renewed until 2027-02-25 09:00 UTC."
    )
    async with eng.uow.transaction() as s:
        req = await s.scalar(select(ScheduleRequest).where(ScheduleRequest.short_id == rid))
        assert req.action == Action.SELF_RENEW and req.status == Status.PROVISIONED
    assert (await _actions(eng))[-2:] == ["request.approved", "assignment.renewed"]
    # the old end passes and the eligibility stays
    eng.clock.set(T0 + 31 * DAY)
    await _run(eng)
    assert await _eligible_end(eng) == T0 + 90 * DAY


async def test_renew_refusals_change_nothing(eng: Engine) -> None:
    before = await eng.snapshot()
    out = render(await say(eng, BOB, "renew quick"))
    assert out == "✗ Your eligibility for Quick Role is permanent; there is nothing to renew."
    out = render(await say(eng, CAROL, "renew helpdesk-admin"))
    assert out.startswith("✗ You have no assignment to Helpdesk Administrator to renew.")
    assert await eng.snapshot() == before


async def test_an_admin_extends_an_assignment_directly(eng: Engine) -> None:
    await say(eng, ALICE, "assign dave@contoso.com helpdesk-admin eligible 30d on call")
    before = await eng.snapshot()
    out = render(await say(eng, BOB, "extend-assignment dave@contoso.com helpdesk-admin 30d"))
    assert out == "✗ Only admins can extend assignments."
    out = render(
        await say(eng, ALICE, "extend-assignment dave@contoso.com helpdesk-admin until 2026-12-01")
    )
    assert out.startswith("✗ The new end must be after the current one (2026-12-27 09:00 UTC)")
    out = render(await say(eng, ALICE, "extend-assignment bob@contoso.com quick 1d"))
    assert out == (
        "✗ Bob Builder's eligibility for Quick Role is permanent; there is nothing to extend."
    )
    assert await eng.snapshot() == before
    out = render(
        await say(
            eng,
            ALICE,
            "extend-assignment dave@contoso.com helpdesk-admin until 2027-06-30 audit season",
        )
    )
    assert out.startswith(
        "Dave Duty's eligibility for Helpdesk Administrator now ends "
        "2027-06-30 00:00 UTC. Request R-"
    )
    assert (await _actions(eng))[-1] == "assignment.extended"
    told = [p["headline"] for e, k, p in await eng.outbox("assigned") if e == DAVE]
    assert told[-1] == (
        "Alice Admin extended your eligibility for Helpdesk Administrator "
        "until 2027-06-30 00:00 UTC."
    )
    async with eng.uow.transaction() as s:
        req = await s.scalar(
            select(ScheduleRequest).where(ScheduleRequest.action == Action.ADMIN_EXTEND)
        )
        assert req.status == Status.PROVISIONED and req.justification == "audit season"


async def test_admins_not_the_roles_approvers_decide_a_renewal(eng: Engine) -> None:
    # Global Administrator's approver is Carol; a renewal still goes to the admins.
    await say(eng, ALICE, "assign dave@contoso.com global-admin active 30d incident")
    out = render(await say(eng, DAVE, "renew global-admin 7d"))
    assert "to renew Global Administrator is waiting for an admin's approval" in out
    rid = out.split()[1]
    assert rid in render(await say(eng, ALICE, "approvals"))
    assert rid not in render(await say(eng, CAROL, "approvals"))
    refused = render(await say(eng, CAROL, f"approve {rid} ok"))
    assert refused.startswith("✗ You are not an approver for Global Administrator")
    canceled = render(await say(eng, DAVE, f"cancel {rid}"))
    assert canceled == f"Request {rid} for Global Administrator is canceled."
    denied = render(await say(eng, ALICE, f"approve {rid} ok"))
    assert denied.startswith(f"✗ {rid} is already decided")


async def test_two_workers_offer_a_renewal_once(eng: Engine, db_url: str) -> None:
    await say(eng, ALICE, "assign dave@contoso.com helpdesk-admin eligible 30d on call")
    eng.clock.set(T0 + 16 * DAY)
    other = make_engine(db_url)
    try:
        await asyncio.gather(
            *(
                run_due_timers(uow, eng.clock, worker=name, actions=lifecycle_actions())
                for uow, name in ((eng.uow, "a"), (UnitOfWork(other), "b"))
            )
        )
    finally:
        await other.dispose()
    assert [e for e, k, p in await eng.outbox("renewable")] == [DAVE]
    assert [e for e, k, p in await eng.outbox("assignment_ending")] == [ALICE]
    assert (await _actions(eng)).count("assignment.renewal_offered") == 1


async def test_a_renewal_approved_after_the_assignment_went_fails_and_says_so(eng: Engine) -> None:
    await say(eng, ALICE, "assign dave@contoso.com helpdesk-admin eligible 30d on call")
    rid = render(await say(eng, DAVE, "renew helpdesk-admin 10d")).split()[1]
    await say(eng, ALICE, "remove dave@contoso.com helpdesk-admin")
    await say(eng, ALICE, f"approve {rid} ok")
    async with eng.uow.transaction() as s:
        req = await s.scalar(select(ScheduleRequest).where(ScheduleRequest.short_id == rid))
        assert req.status == Status.FAILED
    told = [p["headline"] for e, k, p in await eng.outbox("expired") if e == DAVE]
    assert told == [
        f"Your eligibility for Helpdesk Administrator had already ended, so {rid} "
        "could not renew it. Ask an admin to assign it again."
    ]
    assert (await _actions(eng))[-2:] == ["request.approved", "request.failed"]
