"""Extend (selfExtend) and a later start by the clock (issue 12, item 14)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from cards.text import render
from cards.views import EXPIRED, EXPIRING, Notification, RoleRef
from handlers.chat import local_start
from handlers.commands import Activate, StartTime
from handlers.extend import last_justification
from handlers.grammar import CommandError, parse_command
from handlers.timers import lifecycle_actions, run_due_timers
from storage.models import AuditEvent, Schedule, ScheduleRequest, Timer
from tests.unit.conftest import T0, Engine
from tests.unit.helpers import BOB, CAROL, say
from vocab.states import Action, ScheduleKind, ScheduleState, Status, TimerStatus


async def _active_end(eng: Engine, role: str) -> datetime | None:
    async with eng.uow.transaction() as s:
        return await s.scalar(
            select(Schedule.end_at).where(
                Schedule.role_id == role,
                Schedule.kind == ScheduleKind.ACTIVE,
                Schedule.state == ScheduleState.ACTIVE,
            )
        )


async def test_extend_without_approval_moves_the_end_and_its_timers(eng: Engine) -> None:
    await say(eng, BOB, "activate quick 30m checking")
    eng.clock.advance(timedelta(minutes=25))
    out = render(await say(eng, BOB, "extend quick 20m still checking"))
    assert out.startswith("Quick Role is extended until 2026-11-27 09:50 UTC. Request R-")
    assert await _active_end(eng, "quick") == T0 + timedelta(minutes=50)
    async with eng.uow.transaction() as s:
        req = await s.scalar(
            select(ScheduleRequest).where(ScheduleRequest.action == Action.SELF_EXTEND)
        )
        assert req.status == Status.PROVISIONED and req.justification == "still checking"
        due = sorted(
            (t.kind, t.due_at)
            for t in (
                await s.scalars(select(Timer).where(Timer.status == TimerStatus.PENDING))
            ).all()
        )
        actions = [e.action for e in (await s.scalars(select(AuditEvent))).all()]
    assert due == [
        ("expire", T0 + timedelta(minutes=50)),
        ("warn", T0 + timedelta(minutes=50) - timedelta(seconds=10)),
    ]
    assert actions[-2:] == ["request.created", "role.extended"]
    # the old end passes and nothing ends; the new one ends it
    eng.clock.set(T0 + timedelta(minutes=31))
    await run_due_timers(eng.uow, eng.clock, worker="t", actions=lifecycle_actions())
    assert await _active_end(eng, "quick") is not None
    eng.clock.set(T0 + timedelta(minutes=51))
    await run_due_timers(eng.uow, eng.clock, worker="t", actions=lifecycle_actions())
    assert await _active_end(eng, "quick") is None


async def test_the_maximum_counts_from_the_original_start(eng: Engine) -> None:
    await say(eng, BOB, "activate quick 40m checking")
    before = await eng.snapshot()
    out = render(await say(eng, BOB, "extend quick 30m more"))
    assert out == (
        "✗ Quick Role can be active for at most 1h from its start at "
        "2026-11-27 09:00 UTC; extend by at most 20m (you asked for 30m)."
    )
    assert await eng.snapshot() == before
    out = render(await say(eng, BOB, "extend helpdesk-admin 1h x"))
    assert out.startswith("✗ Helpdesk Administrator is not active for you")


async def test_extend_needs_approval_when_the_role_does(eng: Engine) -> None:
    rid = (await say(eng, BOB, "activate global-admin 1h keys")).request.id
    await say(eng, CAROL, f"approve {rid} ok")
    out = render(await say(eng, BOB, "extend global-admin 2h keys take longer"))
    assert "to extend Global Administrator is waiting for approval" in out
    ext = out.split()[1]
    assert await _active_end(eng, "global-admin") == T0 + timedelta(hours=1)  # not yet
    again = render(await say(eng, BOB, "extend global-admin 1h again"))
    assert again.startswith(f"✗ You already asked to extend Global Administrator: {ext}")
    card = [p for e, k, p in await eng.outbox("approval_needed") if e == CAROL][-1]
    assert card["headline"].startswith("Bob Builder asks to extend Global Administrator by 2h")
    approved = render(await say(eng, CAROL, f"approve {ext} fine"))
    assert approved.startswith(f"You approved {ext}")
    assert await _active_end(eng, "global-admin") == T0 + timedelta(hours=3)
    told = [p["headline"] for e, k, p in await eng.outbox("activated") if e == BOB]
    assert told[-1] == "Global Administrator is extended until 2026-11-27 12:00 UTC."


def test_activate_at_a_clock_time_parses_and_leaves_other_at_alone() -> None:
    cmd = parse_command("activate quick 1h at 14:00 fixing")
    assert cmd == Activate("quick", timedelta(hours=1), None, "fixing", start=StartTime(14, 0))
    cmd = parse_command("activate quick at tomorrow 09:00 early fix")
    assert isinstance(cmd, Activate) and cmd.start == StartTime(9, 0, tomorrow=True)
    cmd = parse_command("activate quick 1h at the office")
    assert isinstance(cmd, Activate) and cmd.start is None and cmd.justification == "at the office"
    with pytest.raises(CommandError, match="is not a time"):
        parse_command("activate quick at tomorrow noon")


def test_clock_times_are_read_in_the_installation_time_zone() -> None:
    now = datetime(2026, 11, 27, 12, 30, tzinfo=UTC)  # 13:30 in Berlin
    assert local_start(StartTime(14, 0), now=now, timezone="Europe/Berlin") == datetime(
        2026, 11, 27, 13, 0, tzinfo=UTC
    )
    assert local_start(StartTime(13, 0), now=now, timezone="Europe/Berlin") == datetime(
        2026, 11, 28, 12, 0, tzinfo=UTC
    )  # passed today: the next one
    assert local_start(
        StartTime(9, 0, tomorrow=True), now=now, timezone="Europe/Berlin"
    ) == datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


async def test_activate_at_schedules_the_start(eng: Engine) -> None:
    out = render(await say(eng, BOB, "activate quick 30m at 14:00 planned work"))
    assert out.startswith("Quick Role is scheduled; request R-")
    assert out.endswith("starts at 2026-11-27 14:00 UTC.")


async def test_warning_offers_extend_and_the_end_offers_request_again(eng: Engine) -> None:
    role = RoleRef(id="quick", name="Quick Role")
    warned = render(
        Notification(kind=EXPIRING, headline="Your Quick Role access ends in 10s", role=role)
    )
    assert "→ more time: extend quick [DURATION]" in warned
    ended = render(
        Notification(kind=EXPIRED, headline="Your Quick Role access has ended.", role=role)
    )
    assert "→ request again: activate quick" in ended
    await say(eng, BOB, "activate quick 5m the printer queue")
    assert await last_justification(eng.uow, actor=BOB, role="quick") == "the printer queue"


async def test_an_extension_approved_after_the_activation_ended_fails_and_says_so(
    eng: Engine,
) -> None:
    rid = (await say(eng, BOB, "activate global-admin 1h keys")).request.id
    await say(eng, CAROL, f"approve {rid} ok")
    ext = render(await say(eng, BOB, "extend global-admin 2h keys take longer")).split()[1]
    eng.clock.advance(timedelta(minutes=10))  # past the minimum before deactivating
    await say(eng, BOB, "deactivate global-admin")
    await say(eng, CAROL, f"approve {ext} fine")
    async with eng.uow.transaction() as s:
        req = await s.scalar(select(ScheduleRequest).where(ScheduleRequest.short_id == ext))
        assert req is not None and req.status == Status.FAILED
        actions = list(await s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert actions[-2:] == ["request.approved", "request.failed"]
    told = [p["headline"] for e, k, p in await eng.outbox("expired") if e == BOB]
    assert told[-1] == (
        f"Global Administrator had already ended, so {ext} could not extend it. "
        "Ask again with: activate global-admin"
    )
    assert await _active_end(eng, "global-admin") is None
