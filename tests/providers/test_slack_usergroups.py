"""The Slack user group provider through the real slack_sdk client against the Slack fake."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.usergroups import SlackUsergroupProvider
from handlers.grants.provider import Person, ProviderError, Target
from tests.providers.jobs import BOB, job, undo
from tests.slackfake import FakeSlackAPI

ADMINS = "S0123ABC"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlackAPI]:
    async with FakeSlackAPI() as fake:
        for user in ("U0BOB", "U0CAROL", "U0DAN"):
            fake.add_user(user, f"{user[2:].lower()}@contoso.com", user[2:].title())
        fake.add_usergroup(ADMINS, ["U0CAROL"])
        yield fake


@pytest.fixture
def groups(slack: FakeSlackAPI) -> SlackUsergroupProvider:
    return SlackUsergroupProvider(AsyncWebClient(token="xoxb-test", base_url=slack.base_url))


TARGET = Target(kind="slack_usergroup", ref=ADMINS)


async def test_grant_adds_the_person_and_keeps_everyone_else(
    slack: FakeSlackAPI, groups: SlackUsergroupProvider
) -> None:
    await groups.grant(job("slack_usergroup", ADMINS))

    assert slack.usergroups[ADMINS] == ["U0CAROL", "U0BOB"]
    assert await groups.members(TARGET) == {"U0CAROL", "U0BOB"}
    [update] = slack.calls("usergroups.users.update")
    assert update.args["users"] == "U0CAROL,U0BOB"


async def test_revoke_removes_only_that_person(
    slack: FakeSlackAPI, groups: SlackUsergroupProvider
) -> None:
    grant = job("slack_usergroup", ADMINS)
    await groups.grant(grant)
    await groups.revoke(undo(grant))
    assert slack.usergroups[ADMINS] == ["U0CAROL"]
    assert await groups.members(TARGET) == {"U0CAROL"}


async def test_granting_again_and_revoking_again_change_nothing(
    slack: FakeSlackAPI, groups: SlackUsergroupProvider
) -> None:
    grant = job("slack_usergroup", ADMINS)
    await groups.grant(grant)
    await groups.grant(grant)
    await groups.revoke(undo(grant))
    await groups.revoke(undo(grant))
    assert slack.usergroups[ADMINS] == ["U0CAROL"]
    assert len(slack.calls("usergroups.users.update")) == 2  # one grant, one revoke


async def test_revoking_the_last_member_empties_the_group(
    slack: FakeSlackAPI, groups: SlackUsergroupProvider
) -> None:
    slack.add_usergroup("S0SOLO", ["U0BOB"])
    await groups.revoke(undo(job("slack_usergroup", "S0SOLO")))
    assert slack.usergroups["S0SOLO"] == []


async def test_concurrent_grants_to_one_group_all_land(
    slack: FakeSlackAPI, groups: SlackUsergroupProvider
) -> None:
    people = [Person(email=f"{u}@contoso.com", name=u, slack_id=u) for u in ("U0BOB", "U0DAN")]
    await asyncio.gather(
        *(groups.grant(job("slack_usergroup", ADMINS, person=p, grant_id=p.email)) for p in people)
    )
    assert sorted(slack.usergroups[ADMINS]) == ["U0BOB", "U0CAROL", "U0DAN"]


async def test_rate_limit_reports_retry_after(
    slack: FakeSlackAPI, groups: SlackUsergroupProvider
) -> None:
    slack.fail_next("usergroups.users.update", status=429, retry_after=9)
    with pytest.raises(ProviderError) as raised:
        await groups.grant(job("slack_usergroup", ADMINS))
    assert (raised.value.retry_after, raised.value.permanent) == (9, False)
    assert slack.usergroups[ADMINS] == ["U0CAROL"]


async def test_slack_errors_are_classified(
    slack: FakeSlackAPI, groups: SlackUsergroupProvider
) -> None:
    slack.fail_next("usergroups.users.list", status=500)
    with pytest.raises(ProviderError) as raised:
        await groups.grant(job("slack_usergroup", ADMINS))
    assert not raised.value.permanent

    slack.fail_next("usergroups.users.update", error="missing_scope")
    with pytest.raises(ProviderError, match="missing_scope") as raised:
        await groups.grant(job("slack_usergroup", ADMINS))
    assert raised.value.permanent

    with pytest.raises(ProviderError, match="no_such_subteam") as raised:
        await groups.grant(job("slack_usergroup", "S0NOPE"))
    assert raised.value.permanent


async def test_a_timeout_is_retryable(slack: FakeSlackAPI) -> None:
    slack.hang_next("usergroups.users.list", seconds=1.0)
    client = AsyncWebClient(token="xoxb-test", base_url=slack.base_url, timeout=0.3)
    with pytest.raises(ProviderError, match="did not answer") as raised:
        await SlackUsergroupProvider(client).grant(job("slack_usergroup", ADMINS))
    assert not raised.value.permanent
    assert slack.usergroups[ADMINS] == ["U0CAROL"]


async def test_a_person_without_a_slack_id_fails_without_calling_slack(
    slack: FakeSlackAPI, groups: SlackUsergroupProvider
) -> None:
    nobody = Person(email="eve@contoso.com", name="Eve", teams_id=BOB.teams_id)
    with pytest.raises(ProviderError, match="no Slack user id") as raised:
        await groups.grant(job("slack_usergroup", ADMINS, person=nobody))
    assert raised.value.permanent and not slack.calls()
