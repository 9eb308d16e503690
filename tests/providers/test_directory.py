"""Directory readers: the user members of an Entra group (Graph, paged) and the people of the
Slack workspace (users.list, paged), as directory sync receives them."""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from bot.providers.directory import entra_group_people
from bot.providers.graph import MicrosoftApis
from bot.slack.directory import workspace_people
from handlers.grants.provider import Person
from tests.msfake import MicrosoftFakes
from tests.slackfake import FakeSlackAPI

GROUP = "0c1c6a6e-6a55-4a3e-9f5e-8b1f6b8d2a10"


async def test_entra_group_people_follows_every_page(
    ms: MicrosoftFakes, apis: MicrosoftApis
) -> None:
    ms.graph.page_size = 2
    ms.graph.add_user("u-ann", mail="Ann@Contoso.com", name="Ann Archer")
    ms.graph.add_user("u-ben", mail=None, name="Ben Baker", upn="ben@contoso.com")
    ms.graph.add_user("u-cy", mail="cy@contoso.com", name="")
    ms.graph.add_user("u-out", mail="out@contoso.com", name="Not In Group")
    for user in ("u-ann", "u-ben", "u-cy"):
        ms.graph.add_group_member(GROUP, user)

    people = await entra_group_people(graph=apis.graph, group_id=GROUP)

    assert people == [
        Person(email="ann@contoso.com", name="Ann Archer", teams_id="u-ann"),
        Person(email="ben@contoso.com", name="Ben Baker", teams_id="u-ben"),
        Person(email="cy@contoso.com", name="cy@contoso.com", teams_id="u-cy"),
    ]
    listed = [c for c in ms.graph.calls if "/members" in c.path]
    assert len(listed) == 2  # two pages of two
    assert all(c.headers["authorization"].startswith("Bearer fake.") for c in listed)


async def test_entra_group_people_of_an_empty_group(
    ms: MicrosoftFakes, apis: MicrosoftApis
) -> None:
    assert await entra_group_people(graph=apis.graph, group_id=GROUP) == []


async def test_workspace_people_skips_bots_deleted_and_strangers() -> None:
    async with FakeSlackAPI() as slack:
        slack.users_page = 2
        slack.add_user("U0ANN", "ann@contoso.com", "Ann Archer")
        slack.add_user("U0BOT", "bot@contoso.com", "Deploy Bot")["is_bot"] = True
        slack.add_user("U0OLD", "old@contoso.com", "Old Timer")["deleted"] = True
        slack.add_user("U0EXT", "ext@partner.com", "Partner", team_id="T9")
        slack.add_user("U0BEN", "Ben@Contoso.com", "Ben Baker")
        slack.add_user("U0NOMAIL", "x@contoso.com", "No Mail")["profile"]["email"] = ""
        slack.fail_next("users.list", status=429, retry_after=1)
        client = AsyncWebClient(token="xoxb-test", base_url=slack.base_url)

        people = await workspace_people(client=client, team_id="T1")

        assert people == [
            Person(email="ann@contoso.com", name="Ann Archer", slack_id="U0ANN"),
            Person(email="ben@contoso.com", name="Ben Baker", slack_id="U0BEN"),
        ]
        assert slack.rate_limited("users.list") == 1
        assert len(slack.calls("users.list")) == 1 + 3  # the 429, then three pages
