"""The grant engine with the real Entra role provider, against the fake Graph over HTTPS with
real sign-in: Carol approves Bob, Entra holds the role with Entra's own expiration at the
activation's end; Bob deactivates, Entra no longer holds it. Each request is sent once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from bot.grants_worker import GrantsWorker
from bot.providers.entra_role import EntraRoleProvider
from bot.providers.graph import MicrosoftApis
from cards import views as v
from handlers.clock import FixedClock
from handlers.timers import lifecycle_actions, run_due_timers
from storage.db import make_engine
from storage.models import Grant, Principal, Role, Schedule
from storage.uow import UnitOfWork
from tests.msfake import MicrosoftFakes
from tests.providers.jobs import BOB, wire
from tests.unit.conftest import Engine, seed
from tests.unit.helpers import CAROL, say
from vocab.states import GrantStatus, ScheduleState

GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"


@pytest.fixture
async def eng(sqlite_url: str) -> AsyncIterator[Engine]:
    engine = make_engine(sqlite_url)
    # Graph compares expirations with the real time: the engine's clock starts now.
    clock = FixedClock(datetime.now(UTC).replace(microsecond=0))
    uow = UnitOfWork(engine)
    await seed(uow, clock)
    async with uow.transaction() as s:
        await s.execute(
            update(Principal).where(Principal.email == BOB.email).values(teams_id=BOB.teams_id)
        )
        await s.execute(
            update(Role)
            .where(Role.id == "global-admin")
            .values(grant_targets=[{"entra_role": GLOBAL_ADMIN, "scope": "/"}])
        )
    try:
        yield Engine(uow=uow, clock=clock)
    finally:
        await engine.dispose()


async def test_approval_grants_in_entra_with_its_expiration_and_deactivation_removes(
    ms: MicrosoftFakes, apis: MicrosoftApis, eng: Engine
) -> None:
    worker = GrantsWorker(
        eng.uow, eng.clock, {"entra_role": EntraRoleProvider(apis.graph)}, worker="w1"
    )
    rid = (await say(eng, BOB.email, "activate global-admin 2h fix the tenant")).request.id
    await say(eng, CAROL, f"approve {rid} ok")
    assert await worker.run_once() == 1
    assert await worker.run_once() == 0

    assert ms.graph.role_holders(GLOBAL_ADMIN) == {BOB.teams_id}
    async with eng.uow.read() as s:
        end = await s.scalar(
            select(Schedule.end_at).where(
                Schedule.request_id.is_not(None), Schedule.kind == "active"
            )
        )
    [assigned] = ms.graph.requests
    assert assigned["action"] == "adminAssign"
    assert assigned["scheduleInfo"]["expiration"] == {
        "type": "afterDateTime",
        "endDateTime": wire(end),
    }
    told = [p["headline"] for who, _, p in await eng.outbox("grant_status") if who == BOB.email]
    assert told == ["Global Administrator is active in Entra."]

    eng.clock.advance(timedelta(minutes=6))
    await say(eng, BOB.email, "deactivate global-admin")
    assert await worker.run_once() == 1
    assert ms.graph.role_holders(GLOBAL_ADMIN) == set()
    assert [r["action"] for r in ms.graph.requests] == ["adminAssign", "adminRemove"]
    async with eng.uow.read() as s:
        assert (await s.scalars(select(Grant.status))).all() == [GrantStatus.REVOKED]


async def test_an_extension_moves_entras_expiration_and_expiry_removes_it_once(
    ms: MicrosoftFakes, apis: MicrosoftApis, eng: Engine
) -> None:
    worker = GrantsWorker(
        eng.uow, eng.clock, {"entra_role": EntraRoleProvider(apis.graph)}, worker="w1"
    )
    rid = (await say(eng, BOB.email, "activate global-admin 2h fix the tenant")).request.id
    await say(eng, CAROL, f"approve {rid} ok")
    assert await worker.run_once() == 1
    eng.clock.advance(timedelta(minutes=90))
    ext = (await say(eng, BOB.email, "extend global-admin 1h still fixing")).request.id
    await say(eng, CAROL, f"approve {ext} ok")
    assert await worker.run_once() == 1
    assert await worker.run_once() == 0

    end = await _active_end(eng)
    assert end == eng.clock.now() - timedelta(minutes=90) + timedelta(hours=3)
    assert ms.graph.role_end(BOB.teams_id, GLOBAL_ADMIN) == end
    assert [r["action"] for r in ms.graph.requests] == ["adminAssign", "adminUpdate"]
    assert ms.graph.requests[1]["scheduleInfo"]["expiration"] == {
        "type": "afterDateTime",
        "endDateTime": wire(end),
    }
    told = [p["headline"] for who, _, p in await eng.outbox("grant_status") if who == BOB.email]
    assert told[-1] == f"Global Administrator in Entra now lasts until {when(end)}."

    eng.clock.set(end)
    await run_due_timers(eng.uow, eng.clock, worker="t", actions=lifecycle_actions())
    assert await worker.run_once() == 1
    assert await worker.run_once() == 0
    assert [r["action"] for r in ms.graph.requests] == [
        "adminAssign",
        "adminUpdate",
        "adminRemove",
    ]
    assert ms.graph.role_holders(GLOBAL_ADMIN) == set()


async def test_entra_refusing_the_extension_fails_alerts_and_tells_the_holder(
    ms: MicrosoftFakes, apis: MicrosoftApis, eng: Engine
) -> None:
    worker = GrantsWorker(
        eng.uow, eng.clock, {"entra_role": EntraRoleProvider(apis.graph)}, worker="w1"
    )
    rid = (await say(eng, BOB.email, "activate global-admin 2h fix the tenant")).request.id
    await say(eng, CAROL, f"approve {rid} ok")
    assert await worker.run_once() == 1
    ext = (await say(eng, BOB.email, "extend global-admin 1h still fixing")).request.id
    await say(eng, CAROL, f"approve {ext} ok")
    ms.graph.fail_next("roleAssignmentScheduleRequests", status=403)
    assert await worker.run_once() == 0
    async with eng.uow.read() as s:
        (g,) = (await s.scalars(select(Grant))).all()
    assert (g.status, g.phase) == (GrantStatus.FAILED, "extend")
    alerts = {who: p["headline"] for who, _, p in await eng.outbox("grant_failed")}
    assert alerts[BOB.email].startswith("Global Administrator in Entra: failed: ")
    assert "Moving the end of Global Administrator" in alerts["alice@contoso.com"]
    assert [r["action"] for r in ms.graph.requests] == ["adminAssign"]  # Entra kept the old end


async def _active_end(eng: Engine) -> datetime | None:
    async with eng.uow.read() as s:
        return await s.scalar(
            select(Schedule.end_at).where(
                Schedule.request_id.is_not(None),
                Schedule.kind == "active",
                Schedule.state == ScheduleState.ACTIVE,
            )
        )


def when(at: datetime) -> str:
    return v.when(at.isoformat())  # as the card shows it
