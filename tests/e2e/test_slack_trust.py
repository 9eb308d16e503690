"""Nobody acts as someone else through Slack: a second account with an admin's email, a
request from another workspace (Slack Connect included), and a replayed signed request.

Everything goes through real Bolt dispatch of signed requests into the real engine on SQLite
and PostgreSQL (`db_url`), with the fake Slack Web API on a loopback port.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from sqlalchemy import func, select, update

from bot.config import Settings
from bot.runtime import Runtime
from bot.slack.app import build_slack, log_workspace
from cards import views as v
from storage.models import AuditEvent, OutboxMessage, Principal, Schedule, ScheduleRequest
from tests.e2e.conftest import SECRET, SlackBot, drained
from tests.e2e.trust_harness import (
    audit_events,
    outbox,
    principal,
    private_answer,
    running_slack,
)
from tests.slackfake import (
    FakeSlackAPI,
    app_home_opened,
    block_action,
    sign,
    slash_command,
    text_value,
    view_submission,
)
from vocab.states import Action

NOT_SET_UP = "You are not set up in pim-bot yet"
OTHER_WORKSPACE = "pim-bot only serves the workspace it is installed in"


async def command(
    slack: SlackBot, user: str, text: str, *, team_id: str = "T1"
) -> tuple[int, dict]:
    token = f"{user}-{time.time_ns()}"
    body = slash_command(
        text, user_id=user, team_id=team_id, response_url=slack.fake.response_url(token)
    )
    resp = await slack.post(body)
    return resp.status, await private_answer(slack, resp, token)


async def activations(slack: SlackBot) -> int:
    async with slack.runtime.uow.transaction() as s:
        return int(
            await s.scalar(
                select(func.count())
                .select_from(ScheduleRequest)
                .where(ScheduleRequest.action == Action.SELF_ACTIVATE)
            )
            or 0
        )


async def totals(slack: SlackBot) -> dict[str, int]:
    async with slack.runtime.uow.transaction() as s:
        return {
            m.__name__: int(await s.scalar(select(func.count()).select_from(m)) or 0)
            for m in (ScheduleRequest, Schedule, AuditEvent, OutboxMessage)
        }


# --- identity binding --------------------------------------------------------------------------


async def test_a_second_account_with_the_admins_email_cannot_take_her_place(slack: SlackBot):
    slack.fake.add_user(id="U0MALLORY", email="alice@contoso.com", name="Mallory")
    status, answer = await command(slack, "U0MALLORY", "roles")
    assert status == 200 and NOT_SET_UP in answer["text"]
    assert (await principal(slack.runtime, "alice@contoso.com")).slack_id == "U0ALICE"
    # The admin command that used to run as Alice is refused the same way.
    status, answer = await command(
        slack, "U0MALLORY", "assign dave@contoso.com secret-admin active let me in"
    )
    assert NOT_SET_UP in answer["text"]
    assert (await principal(slack.runtime, "alice@contoso.com")).slack_id == "U0ALICE"
    dave = await principal(slack.runtime, "dave@contoso.com")
    async with slack.runtime.uow.transaction() as s:
        assert (
            await s.scalar(
                select(func.count())
                .select_from(Schedule)
                .where(Schedule.principal_id == dave.id, Schedule.role_id == "secret-admin")
            )
            == 0
        )
    refused = await audit_events(slack.runtime, "principal.link_refused")
    assert len(refused) == 2  # every attempt is on record ...
    assert refused[0].target == "alice@contoso.com"
    assert refused[0].details["platform"] == "slack"
    assert refused[0].details["presented_id"] == "U0MALLORY"
    assert refused[0].details["bound_id"] == "U0ALICE"
    (alert,) = await outbox(slack.runtime, v.ALERT)  # ... and admins are told once
    await drained(slack.runtime)
    dms = [c for c in slack.fake.messages_to("U0ALICE") if "U0MALLORY" in json.dumps(c.args)]
    assert len(dms) == 1, [c.args for c in dms]
    assert "alice@contoso.com" in json.dumps(dms[0].args)
    assert slack.fake.messages_to("U0MALLORY") == []


async def test_an_admin_rebinds_a_slack_account_in_chat(slack: SlackBot):
    # Dave got a new Slack account; the old id stays his until an admin says otherwise.
    slack.fake.add_user(id="U0DAVE2", email="dave@contoso.com", name="Dave Duty")
    status, answer = await command(slack, "U0DAVE2", "roles")
    assert NOT_SET_UP in answer["text"]
    await drained(slack.runtime)  # the admins' alert about that attempt
    before = await totals(slack)
    status, answer = await command(slack, "U0BOB", "link dave@contoso.com slack:U0DAVE2")
    assert answer["text"].endswith("Only admins can link people to chat accounts.")
    assert await totals(slack) == before
    status, answer = await command(slack, "U0ALICE", "link dave@contoso.com slack:U0DAVE2")
    assert answer["text"].endswith(
        "Dave Duty (dave@contoso.com) is now Slack user U0DAVE2 (was U0DAVE)."
    )
    (linked,) = await audit_events(slack.runtime, "principal.linked")
    assert linked.actor == "alice@contoso.com" and linked.target == "dave@contoso.com"
    assert linked.details == {"platform": "slack", "old_id": "U0DAVE", "new_id": "U0DAVE2"}
    status, answer = await command(slack, "U0DAVE2", "roles")
    assert "Global Administrator" in json.dumps(answer)
    status, answer = await command(slack, "U0ALICE", "link dave@contoso.com slack:nonsense")
    assert "'slack:nonsense' is not a Slack user id" in answer["text"]
    assert "link USER slack:U…|teams:…" in json.dumps(answer, ensure_ascii=False)


# --- workspace ---------------------------------------------------------------------------------


async def test_requests_from_another_workspace_are_refused_before_any_lookup(slack: SlackBot):
    slack.fake.add_user(id="U0EVIL", email="alice@contoso.com", name="Eve", team_id="T2")
    slack.fake.add_user(id="U0EXT", email="carol@contoso.com", name="Ext", team_id="T2")
    await command(slack, "U0BOB", "roles")  # Bolt's auth.test has run
    slack.fake.clear()
    before = await totals(slack)
    for user in ("U0EVIL", "U0ALICE"):  # a stranger, and a known id sent from another team
        status, answer = await command(
            slack, user, "assign U0EVIL secret-admin active", team_id="T2"
        )
        assert status == 200 and answer["response_type"] == "ephemeral"
        assert answer["text"].startswith(OTHER_WORKSPACE)
    # A Slack Connect user in the shared approval channel clicks Approve: the payload comes
    # through our workspace, but the user's own team differs.
    token = f"ext-{time.time_ns()}"
    resp = await slack.post(
        block_action(
            v.APPROVE,
            "R-AAAA",
            user_id="U0EXT",
            user_team_id="T2",
            channel_id="C0APPROVALS",
            response_url=slack.fake.response_url(token),
        )
    )
    answer = await private_answer(slack, resp, token)
    assert answer["text"].startswith(OTHER_WORKSPACE)
    assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
    resp = await slack.post(
        view_submission(
            "pim_decision", {"b": {"a": text_value("ok")}}, user_id="U0EXT", team_id="T2"
        )
    )
    assert 400 <= resp.status < 500
    resp = await slack.post(app_home_opened("U0EXT", team_id="T2"))
    assert 400 <= resp.status < 500
    # Bolt answers after its listeners ran (process_before_response), and whatever they queued
    # has gone out once the outbox is drained: nothing else can still show.
    await drained(slack.runtime)
    methods = {c.method for c in slack.fake.calls()}
    assert methods <= {"response_url"}, methods  # no users.info, no views, no posts
    assert await totals(slack) == before
    assert (await principal(slack.runtime, "alice@contoso.com")).slack_id == "U0ALICE"
    status, answer = await command(slack, "U0BOB", "roles")  # our own workspace still works
    assert "Global Administrator" in json.dumps(answer)


async def test_a_slack_connect_user_is_not_linked_by_email(slack: SlackBot):
    # Only users.info says where this user comes from (an App Home event names no team).
    async with slack.runtime.uow.transaction() as s:
        await s.execute(
            update(Principal).where(Principal.email == "dave@contoso.com").values(slack_id=None)
        )
    slack.fake.add_user(id="U0EXT", email="dave@contoso.com", name="Not Dave", team_id="T2")
    resp = await slack.post(app_home_opened("U0EXT"))
    assert resp.status == 200
    (home,) = await slack.fake.wait_for("views.publish")
    assert NOT_SET_UP in json.dumps(home.args["view"])
    assert (await principal(slack.runtime, "dave@contoso.com")).slack_id is None
    linked = await audit_events(slack.runtime, "principal.slack_id_linked")
    assert all(e.details["slack_id"] != "U0EXT" for e in linked)


async def test_slack_team_id_names_the_workspace(db_url: str):
    async with (
        FakeSlackAPI() as fake,
        running_slack(db_url, fake, env={"SLACK_TEAM_ID": "T9"}) as slack,
    ):
        status, answer = await command(slack, "U0BOB", "roles")  # auth.test says T1
        assert answer["text"].startswith(OTHER_WORKSPACE)
        status, answer = await command(slack, "U0BOB", "roles", team_id="T9")
        assert "Global Administrator" in json.dumps(answer)


# --- replays -----------------------------------------------------------------------------------


async def test_a_replayed_signed_command_runs_once(slack: SlackBot):
    body = slash_command(
        "activate quick 2s", user_id="U0BOB", response_url=slack.fake.response_url("first")
    )
    headers = sign(body, SECRET)
    first = await slack.http.post("/slack/events", data=body, headers=headers)
    answer = await private_answer(slack, first, "first")
    assert answer["text"].startswith("Quick Role is active now.")
    # the 2s activation is over: a second one would be allowed
    await slack.fake.wait_for(
        "chat.postMessage",
        where=lambda c: c.args["channel"] == "U0BOB" and "access has ended" in c.args["text"],
    )
    again = await slack.http.post("/slack/events", data=body, headers=headers)
    assert again.status == 409
    assert await again.text() == "This request was already received; it was not run again."
    assert again.headers["X-Slack-No-Retry"] == "1"
    await drained(slack.runtime)  # the refused replay queued nothing either
    assert await activations(slack) == 1


async def test_replays_are_refused_across_replicas(db_url: str):
    async with (
        FakeSlackAPI() as fake,
        running_slack(db_url, fake) as one,
        running_slack(db_url, fake, policy=False) as two,
    ):
        body = slash_command(
            "activate quick 1m", user_id="U0BOB", response_url=fake.response_url("both")
        )
        headers = sign(body, SECRET)
        answers = await asyncio.gather(
            *(
                bot.http.post("/slack/events", data=body, headers=headers)
                for bot in (one, two, one, two)
            )
        )
        assert sorted(r.status for r in answers) == [200, 409, 409, 409]
        ran = next(r for r in answers if r.status == 200)
        assert (await private_answer(one, ran, "both"))["text"].startswith("Quick Role is active")
        await drained(one.runtime)  # every answer is in: what ran has committed and gone out
        assert await activations(one) == 1


async def test_slack_retrying_an_event_does_not_run_it_twice(slack: SlackBot):
    body = app_home_opened("U0BOB", event_id="Ev0RETRY1")
    first = await slack.post(body)
    assert first.status == 200
    await slack.fake.wait_for("views.publish")
    # Slack's retry: the same event, signed again with a later timestamp.
    retry = await slack.http.post(
        "/slack/events",
        data=body,
        headers={
            **sign(body, SECRET, timestamp=int(time.time()) + 1),
            "X-Slack-Retry-Num": "1",
            "X-Slack-Retry-Reason": "http_timeout",
        },
    )
    assert retry.status == 200
    await drained(slack.runtime)  # Bolt answered after its listener; the outbox is empty too
    assert len(slack.fake.calls("views.publish")) == 1
    # A new event from the same person runs as usual.
    assert (await slack.post(app_home_opened("U0BOB"))).status == 200
    await slack.fake.wait_for("views.publish", count=2)


async def test_start_up_names_the_workspace_and_a_wrong_slack_team_id(db_url: str, caplog):
    caplog.set_level(logging.INFO, logger="bot.slack.app")
    async with FakeSlackAPI() as fake:
        for team_id, error in ((None, False), ("T9", True)):
            settings = Settings.from_env(
                {
                    "DATABASE_URL": db_url,
                    "SLACK_BOT_TOKEN": "xoxb-test",
                    "SLACK_SIGNING_SECRET": SECRET,
                    "SLACK_API_URL": fake.base_url,
                    **({"SLACK_TEAM_ID": team_id} if team_id else {}),
                }
            )
            runtime = Runtime.build(settings)
            try:
                caplog.clear()
                bundle = build_slack(settings, runtime.chat())
                await log_workspace(settings, bundle.app)
            finally:
                await runtime.close()
            assert f"serving workspace {team_id or 'T1'} (Contoso) only" in caplog.text
            assert (
                "SLACK_TEAM_ID is T9 but the bot token belongs to team T1" in caplog.text
            ) is error
