"""Reconciliation of Entra roles and PIM for Groups over HTTPS (the Graph fake, a test CA, a
real azure-identity sign-in): drift both ways, with and without `enforce: remove`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.grants_worker import GrantsWorker
from bot.providers.entra_group import EntraGroupProvider
from bot.providers.entra_role import EntraRoleProvider
from handlers.activation import ActivationAsk, request_activation
from handlers.grants.reconcile import OUTSIDE, REMOVED, RESTORED, reconcile
from handlers.grants.reconcile_book import SqlGrantBook
from handlers.policy import apply_policy
from storage.models import AuditEvent, Grant
from tests.directory.conftest import GROUP
from vocab.states import GrantStatus

ROLE = "62e90394-69f5-4237-9190-012177145e10"
POLICY = f"""
admins: [alice@contoso.com]
principals:
  - {{email: alice@contoso.com, name: Alice Admin, teams_id: u-alice}}
  - {{email: bob@contoso.com, name: Bob Builder, teams_id: u-bob}}
roles:
  - id: global-admin
    name: Global Administrator
    settings: {{require_justification: false}}
    grant: [{{entra_role: {ROLE}, enforce: remove}}]
  - id: oncall-group
    name: On-call group
    settings: {{require_justification: false}}
    grant: [{{entra_group: {GROUP}, access: member}}]
assignments:
  - {{principal: bob@contoso.com, role: global-admin, type: eligible, end: 2027-06-30}}
  - {{principal: bob@contoso.com, role: oncall-group, type: eligible, end: 2027-06-30}}
"""


@pytest.fixture
async def world(eng, ms, apis):
    eng.clock.set(datetime.now(UTC))  # Graph checks the expiration against its own clock
    providers = {
        "entra_role": EntraRoleProvider(apis.graph),
        "entra_group": EntraGroupProvider(apis.graph),
    }
    worker = GrantsWorker(eng.uow, eng.clock, providers, worker="test")
    await apply_policy(eng.uow, eng.clock, text=POLICY)
    for role in ("global-admin", "oncall-group"):
        await request_activation(
            eng.uow,
            eng.clock,
            actor="bob@contoso.com",
            ask=ActivationAsk(role=role, duration=timedelta(hours=1)),
        )
    assert await worker.run_once() == 2
    assert ms.graph.role_holders(ROLE) == {"u-bob"}
    assert ms.graph.group_holders(GROUP) == {"u-bob"}
    return providers, worker


async def audited(eng, action: str) -> list[str]:
    async with eng.uow.read() as s:
        return list(
            await s.scalars(
                select(AuditEvent.target).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        )


async def test_entra_drift_both_ways(eng, ms, world):
    providers, worker = world
    ms.graph.assign_role_directly("u-mallory", ROLE)  # in the portal, outside PIM
    ms.graph.add_group_member(GROUP, "u-alice")  # added to the group by hand
    ms.graph.group_assignments.clear()  # Bob's group membership removed by hand

    report = await reconcile(eng.uow, eng.clock, book=SqlGrantBook(), providers=providers)

    assert sorted(report.outside) == [
        (f"entra_group:{GROUP}:member", "u-alice"),
        (f"entra_role:{ROLE}:/", "u-mallory"),
    ]
    assert report.removed == [(f"entra_role:{ROLE}:/", "u-mallory")]
    assert ms.graph.role_holders(ROLE) == {"u-bob"}  # enforce: remove took it away
    assert sorted(await audited(eng, OUTSIDE)) == [
        "alice@contoso.com/oncall-group",
        "u-mallory/global-admin",
    ]
    assert await audited(eng, REMOVED) == ["u-mallory/global-admin"]
    assert await audited(eng, RESTORED) == ["bob@contoso.com/oncall-group"]
    async with eng.uow.read() as s:
        grant = await s.scalar(select(Grant).where(Grant.role_id == "oncall-group"))
    assert report.restored == [grant.grant_id]
    assert grant.status == GrantStatus.PENDING_PROVISIONING
    headlines = sorted(p["headline"] for _, _, p in await eng.outbox("alert"))
    assert len(headlines) == 3 and all(h for h in headlines)

    assert await worker.run_once() == 1  # the grant again, with Entra's expiration set
    assert "u-bob" in ms.graph.group_holders(GROUP)
    assert ms.graph.requests[-1]["scheduleInfo"]["expiration"]["type"] == "afterDateTime"
    again = await reconcile(eng.uow, eng.clock, book=SqlGrantBook(), providers=providers)
    assert again.restored == [] and again.removed == []
