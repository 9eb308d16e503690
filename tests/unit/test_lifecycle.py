"""Access over time: expiry, warnings, time-outs, deactivation, catch-up after downtime."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from handlers.timers import lifecycle_actions, run_due_timers
from storage.models import AuditEvent, Schedule, ScheduleRequest, Timer
from tests.unit.helpers import ALICE, BOB, CAROL, say


async def sweep(eng) -> int:
    return await run_due_timers(eng.uow, eng.clock, worker="test", actions=lifecycle_actions())


async def active_roles(eng, who=BOB) -> set[str]:
    roles = await say(eng, who, "roles")
    return {r.role.id for r in roles.roles if r.active_until}


async def test_activation_expires_at_its_end(eng):
    await say(eng, BOB, "activate quick 30s")
    assert await active_roles(eng) == {"quick"}
    eng.clock.advance(timedelta(seconds=29))
    assert await sweep(eng) == 1  # only the warning (10s before the end)
    assert await active_roles(eng) == {"quick"}
    eng.clock.advance(timedelta(seconds=1))
    assert await sweep(eng) == 1
    assert await active_roles(eng) == set()
    expired = await eng.outbox("expired")
    assert [(to, p["headline"]) for to, _, p in expired] == [
        (BOB, "Your Quick Role access has ended.")
    ]
    async with eng.uow.transaction() as s:
        sched = (
            await s.scalars(
                select(Schedule).where(Schedule.role_id == "quick", Schedule.kind == "active")
            )
        ).one()
        assert sched.state == "Expired" and sched.ended_at == eng.clock.now()
        last = (await s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()))).first()
        assert last.action == "active.expired" and last.details["late_ms"] == 0


async def test_expiry_warning_comes_before_the_end_with_request_again(eng):
    await say(eng, BOB, "activate quick 1m")
    eng.clock.advance(timedelta(seconds=50))
    await sweep(eng)
    warnings = await eng.outbox("expiring")
    assert [to for to, _, _ in warnings] == [BOB]
    assert warnings[0][2]["headline"] == (
        "Your Quick Role access ends in 10s (at 2026-11-27 09:01 UTC)."
    )
    assert warnings[0][2]["role"]["id"] == "quick"


async def test_no_warning_when_activation_is_shorter_than_the_window(eng):
    await say(eng, BOB, "activate quick 5s")
    eng.clock.advance(timedelta(seconds=5))
    await sweep(eng)
    assert await eng.outbox("expiring") == []
    assert len(await eng.outbox("expired")) == 1


async def test_pending_request_times_out(eng):
    reply = await say(eng, BOB, "activate global-admin 1h keys")
    rid = reply.request.id
    eng.clock.advance(timedelta(hours=23, minutes=59))
    assert await sweep(eng) == 0
    eng.clock.advance(timedelta(minutes=1))
    assert await sweep(eng) == 1
    told = await eng.outbox("timed_out")
    assert [to for to, _, _ in told] == [BOB]
    assert "timed out: nobody decided in time" in told[0][2]["headline"]
    update = (await eng.outbox("request_update"))[-1][2]
    assert update["request"]["status"] == "TimedOut"
    assert update["headline"].startswith("Timed out at 2026-11-28 09:00 UTC")
    late = await say(eng, CAROL, f"approve {rid} ok")
    assert not late.ok and "already decided: Timed out" in late.text


async def test_deactivation_refused_inside_minimum_then_allowed(eng):
    await say(eng, BOB, "activate helpdesk-admin 2h printers")
    eng.clock.advance(timedelta(minutes=4))
    before = await eng.snapshot()
    early = await say(eng, BOB, "deactivate helpdesk-admin")
    assert not early.ok
    assert early.text == (
        "Helpdesk Administrator can be deactivated from 2026-11-27 09:05 UTC (5m after activation)."
    )
    assert await eng.snapshot() == before
    eng.clock.advance(timedelta(minutes=1))
    done = await say(eng, BOB, "deactivate helpdesk-admin")
    assert done.ok and done.text == "Helpdesk Administrator is deactivated. Your access has ended."
    assert await active_roles(eng) == set()
    # the expiry timer was cancelled with it: nothing fires at the old end
    eng.clock.advance(timedelta(hours=3))
    assert await sweep(eng) == 0
    assert await eng.outbox("expired") == []


async def test_deactivate_when_not_active(eng):
    reply = await say(eng, BOB, "deactivate helpdesk-admin")
    assert not reply.ok and reply.text == "Helpdesk Administrator is not active for you."


async def test_work_due_while_down_runs_at_next_start(eng):
    """Nothing swept for a day (the process was down): every due timer runs once, late."""
    for role in ("quick 10m", "helpdesk-admin 1h fix"):
        await say(eng, BOB, f"activate {role}")
    rid = (await say(eng, CAROL, "activate global-admin 1h audit")).request.id
    eng.clock.advance(timedelta(days=1, hours=1))
    ran = await sweep(eng)
    assert ran == 2 + 1 + 1 + 1  # two expiries, two warnings (stale: skipped quietly), a time-out
    assert await active_roles(eng) == set()
    assert await eng.outbox("expiring") == []
    assert len(await eng.outbox("expired")) == 2
    async with eng.uow.transaction() as s:
        req = await s.scalar(select(ScheduleRequest).where(ScheduleRequest.short_id == rid))
        assert req.status == "TimedOut"
        pending = (await s.scalars(select(Timer).where(Timer.status == "pending"))).all()
        assert pending == []
    assert await sweep(eng) == 0


async def test_admin_assign_and_remove(eng):
    reply = await say(eng, ALICE, "assign carol@contoso.com quick active 2h on call tonight")
    assert reply.ok and reply.text == (
        "Carol Chen is now assigned Quick Role until 2026-11-27 11:00 UTC."
    )
    assert await active_roles(eng, CAROL) == {"quick"}
    assert (await eng.outbox("assigned"))[-1][0] == CAROL
    again = await say(eng, ALICE, "assign carol@contoso.com quick active 1h")
    assert not again.ok and "already assigned Quick Role" in again.text
    removed = await say(eng, ALICE, "remove carol@contoso.com quick")
    assert removed.ok and removed.text == "Removed active assignment of Quick Role from Carol Chen."
    assert await active_roles(eng, CAROL) == set()


async def test_assigned_access_is_not_self_deactivated(eng):
    await say(eng, ALICE, "assign carol@contoso.com quick active 2h oncall")
    eng.clock.advance(timedelta(hours=1))
    reply = await say(eng, CAROL, "deactivate quick")
    assert not reply.ok and "assigned to you by an admin" in reply.text


async def test_only_admins_assign(eng):
    before = await eng.snapshot()
    reply = await say(eng, BOB, "assign bob@contoso.com global-admin active")
    assert not reply.ok and reply.text == "Only admins can assign roles."
    reply = await say(eng, BOB, "remove carol@contoso.com global-admin")
    assert not reply.ok and reply.text == "Only admins can remove assignments."
    assert await eng.snapshot() == before


async def test_eligibility_with_end_expires_and_blocks_activation(eng):
    await say(eng, ALICE, "assign dave@contoso.com helpdesk-admin eligible 1d ops rota")
    ok = await say(eng, DAVE_ := "dave@contoso.com", "activate helpdesk-admin 1h printers")
    assert ok.ok
    eng.clock.advance(timedelta(days=1))
    await sweep(eng)
    refused = await say(eng, DAVE_, "activate helpdesk-admin 1h printers again")
    assert not refused.ok and "not eligible" in refused.text
