"""The grant engine with the real Entra role provider, against the fake Graph over HTTPS with
real sign-in: Carol approves Bob, Entra holds the role with Entra's own expiration at the
activation's end; Bob deactivates, Entra no longer holds it. Each request is sent once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bot.grants_worker import GrantsWorker
from bot.providers.entra_role import EntraRoleProvider
from bot.providers.graph import MicrosoftApis
from handlers.clock import FixedClock
from storage.db import make_engine
from storage.models import Grant, Principal, Role, Schedule
from storage.uow import UnitOfWork
from tests.conftest import migrate
from tests.msfake import MicrosoftFakes
from tests.providers.jobs import BOB, wire
from tests.unit.conftest import Engine, seed
from tests.unit.helpers import CAROL, say
from vocab.states import GrantStatus

GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"


@pytest.fixture
async def eng(tmp_path: Path) -> AsyncIterator[Engine]:
    url = f"sqlite+aiosqlite:///{tmp_path}/pim.db"
    migrate(url)
    engine = make_engine(url)
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
