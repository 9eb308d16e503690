"""Extending a grant already made, with each real provider against its loopback fake: Entra
and Azure hold the new expiration (adminUpdate / AdminUpdate), an assignment that ended at its
old end is assigned again, a wrong request shape is refused as the real service would, and a
Slack user group (no end there) is left as it is."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.providers.azure_role import AzureRoleProvider, request_name
from bot.providers.entra_group import EntraGroupProvider
from bot.providers.entra_role import EntraRoleProvider
from bot.providers.graph import ApiError, MicrosoftApis
from bot.providers.webhook import webhook_id
from bot.slack.usergroups import SlackUsergroupProvider
from handlers.grants.provider import GrantJob, ProviderError
from tests.msfake import MicrosoftFakes
from tests.providers.jobs import BOB, job
from tests.slackfake import FakeSlackAPI

GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
ONCALL = "4f1c2d3e-0000-4000-8000-00000000a11c"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
PROD = "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/prod"


def later(grant: GrantJob, hours: float = 2.0) -> GrantJob:
    """The same grant, its activation extended: the worker hands the provider the new end."""
    assert grant.end is not None
    return replace(grant, action="extend", end=grant.end + timedelta(hours=hours))


def second(when: datetime | None) -> datetime | None:
    return when.replace(microsecond=0) if when else None


async def test_entra_role_extension_moves_entras_expiration(
    ms: MicrosoftFakes, apis: MicrosoftApis
) -> None:
    entra = EntraRoleProvider(apis.graph)
    grant = job("entra_role", GLOBAL_ADMIN)
    await entra.grant(grant)
    moved = later(grant)

    await entra.extend(moved)
    await entra.extend(moved)  # a retry sets the same end again

    assert ms.graph.role_end(BOB.teams_id, GLOBAL_ADMIN) == second(moved.end)
    assert [r["action"] for r in ms.graph.requests] == ["adminAssign", "adminUpdate", "adminUpdate"]
    update = ms.graph.requests[1]
    assert update["scheduleInfo"]["expiration"]["type"] == "afterDateTime"
    assert (update["roleDefinitionId"], update["directoryScopeId"]) == (GLOBAL_ADMIN, "/")


async def test_entra_role_ended_at_its_old_end_is_assigned_again(
    ms: MicrosoftFakes, apis: MicrosoftApis
) -> None:
    entra = EntraRoleProvider(apis.graph)
    grant = job("entra_role", GLOBAL_ADMIN)
    await entra.grant(grant)
    ms.graph.role_assignments.clear()  # Entra ended it (the worker was late)

    await entra.extend(later(grant))

    assert ms.graph.role_end(BOB.teams_id, GLOBAL_ADMIN) == second(later(grant).end)
    assert [r["action"] for r in ms.graph.requests] == ["adminAssign", "adminAssign"]


async def test_graph_refuses_an_update_without_a_schedule(
    ms: MicrosoftFakes, apis: MicrosoftApis
) -> None:
    entra = EntraRoleProvider(apis.graph)
    grant = job("entra_role", GLOBAL_ADMIN)
    await entra.grant(grant)
    with pytest.raises(ApiError) as refused:
        await entra._request(later(grant), {"action": "adminUpdate"})
    assert refused.value.code == "Request_BadRequest" and refused.value.permanent
    with pytest.raises(ApiError) as refused:
        await entra._request(later(grant), {"action": "adminStretch"})
    assert refused.value.code == "InvalidScheduleRequest"
    assert ms.graph.role_end(BOB.teams_id, GLOBAL_ADMIN) == second(grant.end)


async def test_entra_group_extension_moves_the_membership_end(
    ms: MicrosoftFakes, apis: MicrosoftApis
) -> None:
    groups = EntraGroupProvider(apis.graph)
    grant = job("entra_group", ONCALL, access="member")
    await groups.grant(grant)

    await groups.extend(later(grant))

    assert ms.graph.group_end(BOB.teams_id, ONCALL) == second(later(grant).end)
    sent = ms.graph.requests[-1]
    assert (sent["action"], sent["accessId"], sent["groupId"]) == ("adminUpdate", "member", ONCALL)


async def test_azure_extension_is_an_admin_update_named_for_its_end(
    ms: MicrosoftFakes, apis: MicrosoftApis
) -> None:
    azure = AzureRoleProvider(apis.arm)
    grant = job("azure_role", CONTRIBUTOR, scope=PROD)
    await azure.grant(grant)
    first, again = later(grant, 1), later(grant, 2)

    await azure.extend(first)
    await azure.extend(first)  # the same request name: ARM says it exists; done
    await azure.extend(again)

    assert ms.arm.end_of(BOB.teams_id, CONTRIBUTOR, PROD) == second(again.end)
    assert [p["requestType"] for p in ms.arm.requests] == [
        "AdminAssign",
        "AdminUpdate",
        "AdminUpdate",
    ]
    assert len({request_name(grant), request_name(first), request_name(again)}) == 3


async def test_azure_ended_at_its_old_end_is_assigned_again(
    ms: MicrosoftFakes, apis: MicrosoftApis
) -> None:
    azure = AzureRoleProvider(apis.arm)
    grant = job("azure_role", CONTRIBUTOR, scope=PROD)
    await azure.grant(grant)
    ms.arm.assignments.clear()

    await azure.extend(later(grant))

    assert ms.arm.end_of(BOB.teams_id, CONTRIBUTOR, PROD) == second(later(grant).end)
    assert [p["requestType"] for p in ms.arm.requests] == ["AdminAssign", "AdminAssign"]


async def test_an_extension_to_an_end_already_past_is_permanent(apis: MicrosoftApis) -> None:
    grant = job("entra_role", GLOBAL_ADMIN)
    over = replace(grant, action="extend", end=datetime.now(UTC) - timedelta(minutes=1))
    with pytest.raises(ProviderError) as refused:
        await EntraRoleProvider(apis.graph).extend(over)
    assert refused.value.permanent


async def test_slack_user_group_extension_changes_nothing() -> None:
    async with FakeSlackAPI() as slack:
        slack.add_user("U0BOB", "bob@contoso.com", "Bob")
        slack.add_usergroup("S0123ABC", ["U0BOB"])
        groups = SlackUsergroupProvider(AsyncWebClient(token="xoxb-test", base_url=slack.base_url))
        await groups.extend(later(job("slack_usergroup", "S0123ABC")))
        assert slack.usergroups["S0123ABC"] == ["U0BOB"]
        assert slack.calls("usergroups.users.update") == []


def test_each_webhook_extension_has_its_own_stable_id() -> None:
    grant = job("webhook", "https://hooks.example.com/pim")
    first, again = later(grant, 1), later(grant, 2)
    assert webhook_id(first) == webhook_id(replace(first))  # every retry of it
    assert len({webhook_id(grant), webhook_id(first), webhook_id(again)}) == 3
