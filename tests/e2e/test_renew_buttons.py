"""Renew from the "assignment ends soon" notice, in Slack through real Bolt and in Teams
through the real botbuilder adapter (issue 12, item 14: selfRenew / adminExtend)."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select, update

from bot.runtime import Runtime
from cards import views as v
from storage.models import AuditEvent, Schedule, Timer
from tests.e2e.conftest import SlackBot
from tests.e2e.slack_harness import ask
from tests.e2e.teams_harness import TeamsBot, setup, to, verbs, with_verb
from tests.teamsfake import card_of
from vocab.states import ScheduleKind, ScheduleState, TimerStatus

MESSAGE = "application/vnd.microsoft.activity.message"


def texts(message: dict) -> str:
    return json.dumps(message, ensure_ascii=False)


def buttons(message: dict) -> list[tuple[str, str]]:
    return [
        (e["action_id"], e["value"])
        for b in message.get("blocks", [])
        if b["type"] == "actions"
        for e in b["elements"]
    ]


async def _renewal_falls_due(runtime: Runtime) -> None:
    """Sixteen days later, as far as the renewal timer knows: it is due now."""
    async with runtime.uow.transaction() as s:
        await s.execute(
            update(Timer)
            .where(Timer.kind == "renew", Timer.status == TimerStatus.PENDING)
            .values(due_at=runtime.clock.now())
        )
    runtime.poke()


async def _eligible_end(runtime: Runtime, email_role: str) -> object:
    async with runtime.uow.transaction() as s:
        return await s.scalar(
            select(Schedule.end_at).where(
                Schedule.role_id == email_role,
                Schedule.kind == ScheduleKind.ELIGIBLE,
                Schedule.principal_id == 3,
                Schedule.state == ScheduleState.ACTIVE,
            )
        )


async def _audited(runtime: Runtime) -> list[str]:
    async with runtime.uow.transaction() as s:
        return list((await s.scalars(select(AuditEvent.action))).all())


async def test_slack_renew_button_asks_the_admins(slack: SlackBot):
    said = await ask(slack, "assign carol@contoso.com quick eligible 30d on call", user="U0ALICE")
    assert said.startswith("Carol Chen is now eligible for Quick Role until")
    end = await _eligible_end(slack.runtime, "quick")
    await _renewal_falls_due(slack.runtime)
    (notice,) = await slack.fake.wait_for(
        "chat.postMessage",
        where=lambda c: c.args["channel"] == "U0CAROL" and "ends in" in texts(c.args),
    )
    assert "Your eligibility for Quick Role ends in" in texts(notice.args)
    assert buttons(notice.args) == [(v.RENEW, "quick")]
    (offer,) = await slack.fake.wait_for(
        "chat.postMessage",
        where=lambda c: c.args["channel"] == "U0ALICE" and "extend-assignment" in texts(c.args),
    )
    assert "extend-assignment carol@contoso.com quick eligible" in texts(offer.args)
    resp = await slack.click("U0CAROL", v.RENEW, "quick", token="renew")
    assert resp.status == 200
    (reply,) = await slack.replies("renew")
    assert "to renew Quick Role is waiting for an admin" in texts(reply), reply
    request_id = texts(reply).split("Request ")[1].split(" ")[0]
    (card,) = await slack.fake.wait_for(
        "chat.postMessage",
        where=lambda c: c.args["channel"] == "U0ALICE" and "asks to renew" in texts(c.args),
    )
    assert buttons(card.args) == [(v.APPROVE, request_id), (v.DENY, request_id)]
    resp = await slack.command("U0ALICE", f"approve {request_id} still on call", token="ok")
    assert resp.status == 200
    (approved,) = await slack.replies("ok")
    assert approved["text"].startswith(f"You approved {request_id}"), approved
    await slack.fake.wait_for(
        "chat.postMessage",
        where=lambda c: c.args["channel"] == "U0CAROL" and "is renewed until" in texts(c.args),
    )
    assert await _eligible_end(slack.runtime, "quick") == end + timedelta(days=30)
    assert "assignment.renewed" in await _audited(slack.runtime)


async def test_teams_renew_action_asks_the_admins(teams: TeamsBot):
    await setup(teams, "carol", "alice")
    await teams.say("alice", "assign carol@contoso.com quick eligible 30d on call")
    await teams.connector.wait_for("post", where=to("carol", "now eligible"))
    await _renewal_falls_due(teams.runtime)
    (notice,) = await teams.connector.wait_for("post", where=with_verb("carol", v.RENEW))
    assert verbs(card_of(notice)) == [(v.RENEW, {"role": "quick"})]
    await teams.connector.wait_for("post", where=to("alice", "extend-assignment"))
    result = await teams.click(
        "carol", v.RENEW, {"role": "quick"}, card_id=notice.activity_id or ""
    )
    assert result["type"] == MESSAGE
    assert "to renew Quick Role is waiting for an admin" in result["value"], result
    # a second click finds the first request waiting
    again = await teams.click("carol", v.RENEW, {"role": "quick"}, card_id=notice.activity_id or "")
    assert "You already asked to renew Quick Role" in again["value"]
