"""Nobody acts as someone else through Teams: an activity from a tenant pim-bot does not serve,
and a roster entry in our own tenant carrying an admin's email.

Through botbuilder's adapter over HTTP into the real engine (SQLite and PostgreSQL), read back
from the fake connector.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from bot.config import Settings
from bot.teams.guards import TenantGate, allowed_tenants
from cards import views as v
from storage.models import AuditEvent, ConversationRef, OutboxMessage, Principal
from tests.e2e.conftest import drained
from tests.e2e.teams_harness import TeamsBot
from tests.e2e.trust_harness import audit_events, outbox, principal, running_teams
from tests.teamsfake import (
    FakeConnector,
    installation_update,
    invoke_action,
    message,
    personal_conversation_id,
)

MESSAGE = "application/vnd.microsoft.activity.message"
OTHER_TENANT = "pim-bot does not serve your organisation"


@pytest.fixture
async def tenant_teams(db_url: str) -> AsyncIterator[TeamsBot]:
    async with (
        FakeConnector() as connector,
        running_teams(db_url, connector, env={"PIM_TEAMS_TENANTS": "tenant-0, TENANT-1"}) as teams,
    ):
        yield teams


async def totals(teams: TeamsBot) -> dict[str, int]:
    async with teams.runtime.uow.transaction() as s:
        return {
            m.__name__: int(await s.scalar(select(func.count()).select_from(m)) or 0)
            for m in (AuditEvent, OutboxMessage, Principal, ConversationRef)
        }


async def test_an_activity_from_another_tenant_is_refused_and_nothing_is_kept(
    tenant_teams: TeamsBot,
):
    teams = tenant_teams
    url = teams.connector.service_url
    teams.connector.add_member(
        "aad-evil", "Alice Admin", "alice@contoso.com", tenant_id="tenant-evil"
    )
    before = await totals(teams)
    # Someone whose roster email is Alice's; then someone presenting Alice's own object id.
    for aad in ("aad-evil", "aad-alice"):
        teams.connector.clear()
        resp = await teams.post(
            message(
                "assign aad-evil secret-admin active",
                user_aad=aad,
                service_url=url,
                tenant_id="tenant-evil",
            )
        )
        assert resp.status in (200, 201)
        (answer,) = await teams.connector.wait_for("reply")
        assert answer.body["text"].startswith(OTHER_TENANT)
        assert answer.conversation_id == personal_conversation_id(aad)
        resp = await teams.post(
            invoke_action(
                v.APPROVE,
                {"request": "R-AAAA"},
                user_aad=aad,
                service_url=url,
                reply_to_id="1",
                tenant_id="tenant-evil",
            )
        )
        assert resp.status == 200
        body = await resp.json()
        assert body["type"] == MESSAGE and body["value"].startswith(OTHER_TENANT)
        resp = await teams.post(installation_update(aad, service_url=url, tenant_id="tenant-evil"))
        assert resp.status in (200, 201)
        # The adapter answers after the turn ran; what it queued is out once the outbox drains.
        await drained(teams.runtime)
        assert teams.connector.calls("member") == []  # no roster lookup
        assert len(teams.connector.calls()) == 1  # the one refusal, no greeting
    no_tenant = message("roles", user_aad="aad-alice", service_url=url)
    no_tenant.pop("channelData")
    no_tenant["conversation"].pop("tenantId")
    resp = await teams.post(no_tenant)
    assert resp.status in (200, 201)
    await drained(teams.runtime)
    assert await totals(teams) == before  # no conversation reference, no link, no audit
    assert (await principal(teams.runtime, "alice@contoso.com")).teams_id == "aad-alice"
    # The listed tenants still work, whatever the case of the id.
    teams.connector.clear()
    await teams.say("bob", "roles")
    (answer,) = await teams.connector.wait_for("reply")
    assert "Global Administrator" in json.dumps(answer.body)


async def test_a_roster_entry_with_the_admins_email_cannot_take_her_place(tenant_teams: TeamsBot):
    teams = tenant_teams
    url = teams.connector.service_url
    teams.connector.add_member("aad-mallory", "Mallory", "alice@contoso.com", tenant_id="tenant-1")
    resp = await teams.post(
        message(
            "assign dave@contoso.com secret-admin active",
            user_aad="aad-mallory",
            service_url=url,
            tenant_id="tenant-1",
        )
    )
    assert resp.status in (200, 201)
    (answer,) = await teams.connector.wait_for("reply")
    assert answer.body["text"].startswith("You are not set up in pim-bot yet")
    assert (await principal(teams.runtime, "alice@contoso.com")).teams_id == "aad-alice"
    (refused,) = await audit_events(teams.runtime, "principal.link_refused")
    assert refused.target == "alice@contoso.com"
    assert refused.details["platform"] == "teams"
    assert refused.details["presented_id"] == "aad-mallory"
    assert refused.details["bound_id"] == "aad-alice"
    (alert,) = await outbox(teams.runtime, v.ALERT)
    assert "aad-mallory" in json.dumps(alert.payload)
    async with teams.runtime.uow.transaction() as s:
        ref = await s.scalar(select(ConversationRef).where(ConversationRef.key == "aad-mallory"))
    assert ref is None or ref.principal_id is None  # never Alice's address


async def test_an_admin_rebinds_a_teams_account_in_chat(tenant_teams: TeamsBot):
    teams = tenant_teams
    url = teams.connector.service_url
    teams.connector.add_member("aad-dave", "Dave Duty", "dave@contoso.com")
    await teams.install("alice")
    await teams.say("dave", "roles")  # learned by roster: dave is aad-dave
    await teams.connector.wait_for("reply", count=2)
    teams.connector.add_member("aad-dave2", "Dave Duty", "dave@contoso.com")
    teams.connector.clear()
    await teams.post(message("roles", user_aad="aad-dave2", service_url=url))
    (answer,) = await teams.connector.wait_for(
        "reply", where=lambda c: c.conversation_id == personal_conversation_id("aad-dave2")
    )
    assert answer.body["text"].startswith("You are not set up in pim-bot yet")
    teams.connector.clear()
    await teams.say("alice", "link dave@contoso.com teams:aad-dave2")
    (answer,) = await teams.connector.wait_for(
        "reply",
        where=lambda c: (
            c.conversation_id == personal_conversation_id("aad-alice")
            and "now Teams user" in json.dumps(c.body)
        ),
    )
    assert "Dave Duty (dave@contoso.com) is now Teams user aad-dave2 (was aad-dave)." in json.dumps(
        answer.body
    )
    (linked,) = await audit_events(teams.runtime, "principal.linked")
    assert linked.details == {"platform": "teams", "old_id": "aad-dave", "new_id": "aad-dave2"}
    async with teams.runtime.uow.transaction() as s:
        refs = {r.key: r.principal_id for r in (await s.scalars(select(ConversationRef))).all()}
    dave = await principal(teams.runtime, "dave@contoso.com")
    assert refs["aad-dave"] is None and refs["aad-dave2"] == dave.id  # messages follow


def test_the_tenant_list_comes_from_pim_teams_tenants_else_the_app_tenant(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/pim.db"

    def tenants(**env: str) -> frozenset[str]:
        return allowed_tenants(Settings.from_env({"DATABASE_URL": url, **env}))

    assert tenants(PIM_TEAMS_TENANTS=" A , b,,") == {"a", "b"}
    assert tenants(MICROSOFT_APP_TENANT_ID="T-1") == {"t-1"}
    assert tenants(PIM_TEAMS_TENANTS="x", MICROSOFT_APP_TENANT_ID="T-1") == {"x"}
    assert tenants() == frozenset()


def test_without_a_tenant_list_start_up_says_what_happens(tmp_path, caplog):
    url = f"sqlite+aiosqlite:///{tmp_path}/pim.db"
    caplog.set_level(logging.WARNING)
    local = TenantGate.from_settings(
        Settings.from_env({"DATABASE_URL": url, "PIM_TEAMS_ALLOW_UNAUTHENTICATED": "1"}),
        bot=object(),
    )
    assert local.admits("any-tenant") and local.admits(None)
    assert "any tenant" in caplog.text
    caplog.clear()
    registered = TenantGate.from_settings(
        Settings.from_env({"DATABASE_URL": url, "MICROSOFT_APP_ID": "app"}), bot=object()
    )
    assert not registered.admits("any-tenant")
    assert "PIM_TEAMS_TENANTS" in caplog.text and "refuses every" in caplog.text
