"""One engine, both platforms: a request made in Teams is approved in Slack and the other way
round, and every posted card on both platforms shows the outcome.

One runtime runs both transports (Bolt on /slack/events and botbuilder on /api/messages on the
same aiohttp app, both in the outbox worker), with the fake Slack Web API and the fake Bot
Framework connector on their own loopback ports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.config import Settings
from bot.runtime import Runtime
from bot.server import make_app
from bot.slack.app import build_slack
from bot.slack.app import mount as mount_slack
from bot.teams.app import build_teams
from bot.teams.app import mount as mount_teams
from cards import views as v
from handlers.policy import apply_policy
from storage.models import OutboxMessage, Principal, ScheduleRequest
from tests.e2e.conftest import POLICY, SECRET, SlackBot, drained
from tests.e2e.teams_harness import TeamsBot, conv, dump, verbs
from tests.slackfake import FakeSlackAPI, dm_id
from tests.teamsfake import ADAPTIVE, Call, FakeConnector, card_of
from vocab.states import Status


@dataclass
class Both:
    slack: SlackBot
    teams: TeamsBot
    runtime: Runtime


@pytest.fixture
async def both(db_url: str) -> AsyncIterator[Both]:
    async with FakeSlackAPI() as fake, FakeConnector() as connector:
        fake.add_user(id="U0DAVE", email="dave@contoso.com", name="Dave Duty")
        connector.add_member("aad-dave", "Dave Duty", "dave@contoso.com")
        settings = Settings.from_env(
            {
                "DATABASE_URL": db_url,
                "SLACK_BOT_TOKEN": "xoxb-test",
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_API_URL": fake.base_url,
                "PIM_TEAMS_ALLOW_UNAUTHENTICATED": "1",
                "PIM_SWEEP_SECONDS": "1",
            }
        )
        runtime = Runtime.build(settings)
        await runtime.prepare()
        await apply_policy(runtime.uow, runtime.clock, text=POLICY, source="test-policy.yaml")
        slack = build_slack(settings, runtime.chat())
        teams = build_teams(settings, runtime.chat("teams"))
        web_app = make_app(runtime)
        mount_slack(web_app, slack.app)
        mount_teams(web_app, teams)
        runtime.start_background([slack.transport, teams.transport])
        await drained(runtime)  # "you are eligible" DMs: on Slack; nobody is on Teams yet
        fake.clear()
        async with TestClient(TestServer(web_app, host="127.0.0.1")) as http:
            try:
                yield Both(
                    slack=SlackBot(fake=fake, http=http, runtime=runtime),
                    teams=TeamsBot(connector=connector, http=http, runtime=runtime),
                    runtime=runtime,
                )
            finally:
                await runtime.close()


# --- helpers -----------------------------------------------------------------------------------


def buttons(blocks: list[dict[str, Any]]) -> list[tuple[str, str]]:
    found = []
    for b in blocks:
        elements = b.get("elements", []) if b["type"] == "actions" else [b.get("accessory") or {}]
        found += [(e["action_id"], e["value"]) for e in elements if e.get("type") == "button"]
    return found


def teams_card(who: str, verb: str):  # noqa: ANN201 - a wait_for predicate
    return lambda c: (
        c.ok
        and c.conversation_id == conv(who)
        and any(found == verb for found, _ in verbs(card_of(c)))
    )


def slack_to(target: str, *words: str):  # noqa: ANN201
    return lambda c: (
        c.ok
        and dm_id(str(c.args.get("channel", ""))) == dm_id(target)
        and all(w in dump(c.args) for w in words)
    )


async def install(teams: TeamsBot, *people: str) -> None:
    for who in people:
        await teams.install(who)
    await teams.connector.wait_for("post", count=len(people))  # the greetings
    teams.connector.clear()


async def slack_cards(both: Both, request_id: str) -> dict[str, Call]:
    """The approval cards on Slack (Carol's and Erin's DMs, the approval channel), by target."""
    found = {}
    for target in ("U0CAROL", "U0ERIN", "C0APPROVALS"):
        (card,) = await both.slack.fake.wait_for("chat.postMessage", where=slack_to(target))
        assert buttons(card.args["blocks"]) == [(v.APPROVE, request_id), (v.DENY, request_id)]
        assert "Bob Builder" in dump(card.args) and "rotate the keys" in dump(card.args)
        found[target] = card
    return found


async def every_slack_copy_shows(both: Both, posted: list[Any], words: str) -> None:
    updates = await both.slack.fake.wait_for("chat.update", count=len(posted))
    assert {(c.args["channel"], c.args["ts"]) for c in updates} == {
        (p.response["channel"], p.response["ts"]) for p in posted
    }
    for p in posted:
        now = both.slack.fake.message(p.response["channel"], p.response["ts"])
        assert buttons(now["blocks"]) == [] and words in dump(now)


async def status_of(runtime: Runtime, request_id: str) -> str | None:
    async with runtime.uow.transaction() as s:
        return await s.scalar(
            select(ScheduleRequest.status).where(ScheduleRequest.short_id == request_id)
        )


# --- the tests -----------------------------------------------------------------------------------


async def test_asked_in_teams_approved_in_slack(both: Both):
    teams, slack = both.teams, both.slack
    await install(teams, "carol", "bob")
    resp = await teams.say("bob", "activate global-admin 1h rotate the keys")
    assert resp.status in (200, 201)

    # Carol (on both) gets the card on Teams and on Slack; Erin (Slack only) on Slack.
    (carol_teams,) = await teams.connector.wait_for("post", where=teams_card("carol", v.APPROVE))
    request_id = next(d["request"] for verb, d in verbs(card_of(carol_teams)) if verb == v.APPROVE)
    on_slack = await slack_cards(both, request_id)
    (bob_teams,) = await teams.connector.wait_for("post", where=teams_card("bob", v.CANCEL))
    (bob_slack,) = await slack.fake.wait_for("chat.postMessage", where=slack_to("U0BOB"))
    assert buttons(bob_slack.args["blocks"]) == [(v.CANCEL, request_id)]
    await drained(both.runtime)
    # Erin has no Teams id, so nothing was sent to her there; Carol's Teams card is one card.
    assert {c.conversation_id for c in teams.connector.calls("post")} == {
        conv("carol"),
        conv("bob"),
    }
    assert len([c for c in teams.connector.calls("post") if teams_card("carol", v.APPROVE)(c)]) == 1

    resp = await slack.click(
        "U0CAROL", v.APPROVE, request_id, posted=on_slack["U0CAROL"].response, token="approve"
    )
    assert resp.status == 200

    # Carol's Teams card and Bob's submitted Teams card are redrawn in place (PUT) ...
    for who, call in (("carol", carol_teams), ("bob", bob_teams)):
        (put,) = await teams.connector.wait_for(
            "update", where=lambda c, a=call.activity_id: c.activity_id == a
        )
        assert put.conversation_id == conv(who) and put.ok
        now = card_of(teams.connector.activity(conv(who), call.activity_id or ""))
        assert verbs(now) == [] and "Approved by Carol Chen" in dump(now)
    # ... and every Slack copy with chat.update.
    await every_slack_copy_shows(both, [*on_slack.values(), bob_slack], "Approved by Carol Chen")
    # Bob is told on Teams, where he asked, and on Slack.
    told = f"Carol Chen approved your request {request_id}"
    await teams.connector.wait_for(
        "post", where=lambda c: c.conversation_id == conv("bob") and told in dump(c.body)
    )
    await slack.fake.wait_for("chat.postMessage", where=slack_to("U0BOB", told))
    assert await status_of(both.runtime, request_id) == Status.PROVISIONED


async def test_asked_in_slack_approved_in_teams(both: Both):
    teams, slack = both.teams, both.slack
    await install(teams, "carol")  # Bob never installed the Teams app: Slack only for him
    resp = await slack.command("U0BOB", "activate global-admin 1h rotate the keys", token="ask")
    assert resp.status == 200
    (answer,) = await slack.replies("ask")
    assert "waiting for approval" in answer["text"]
    request_id = answer["text"].split("Request ")[1].split(" ")[0]

    on_slack = await slack_cards(both, request_id)
    (carol_teams,) = await teams.connector.wait_for("post", where=teams_card("carol", v.APPROVE))
    assert verbs(card_of(carol_teams)) == [
        (v.APPROVE, {"request": request_id}),
        (v.DENY, {"request": request_id}),
    ]
    (bob_slack,) = await slack.fake.wait_for("chat.postMessage", where=slack_to("U0BOB"))

    result = await teams.click(
        "carol", v.APPROVE, {"request": request_id}, card_id=carol_teams.activity_id or ""
    )
    assert result["type"] == ADAPTIVE and verbs(result["value"]) == []
    assert "Approved by Carol Chen" in dump(result["value"])

    await every_slack_copy_shows(both, [*on_slack.values(), bob_slack], "Approved by Carol Chen")
    await teams.connector.wait_for(
        "update", where=lambda c: c.activity_id == carol_teams.activity_id
    )
    now = card_of(teams.connector.activity(conv("carol"), carol_teams.activity_id or ""))
    assert verbs(now) == [] and "Approved by Carol Chen" in dump(now)
    told = f"Carol Chen approved your request {request_id}"
    await slack.fake.wait_for("chat.postMessage", where=slack_to("U0BOB", told))
    await drained(both.runtime)
    # Bob has a Teams id but no Teams chat with the bot: Slack reached him, Teams could not.
    assert all(c.conversation_id == conv("carol") for c in teams.connector.calls("post"))
    async with both.runtime.uow.transaction() as s:
        bob_id = await s.scalar(select(Principal.id).where(Principal.email == "bob@contoso.com"))
        to_bob = (
            await s.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.recipient_id == bob_id,
                    OutboxMessage.request_id.is_not(None),
                    OutboxMessage.transport != "*",
                )
            )
        ).all()
    assert {m.status for m in to_bob if m.transport == "slack"} == {"sent"}
    assert {m.status for m in to_bob if m.transport == "teams"} == {"unreachable"}

    # A late click on Carol's Slack copy only says it is decided, privately.
    late = await slack.click(
        "U0CAROL", v.APPROVE, request_id, posted=on_slack["U0CAROL"].response, token="late"
    )
    assert late.status == 200
    (refused,) = await slack.replies("late")
    assert refused["response_type"] == "ephemeral"
    assert f"{request_id} is already decided: Approved by Carol Chen" in refused["text"]
    assert await status_of(both.runtime, request_id) == Status.PROVISIONED
