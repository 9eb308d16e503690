"""NUL and other control characters in anything a person types, on SQLite and PostgreSQL.

PostgreSQL cannot store U+0000 in text at all, so before the fix a NUL in a justification ended
in a database error and no answer. Now every way in (the slash command, the activation modal,
the reason modal, Teams messages and card inputs) answers with one clear line and changes
nothing.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select

from cards import slack as slack_cards
from cards import teams as teams_cards
from cards import views as v
from storage.models import AuditEvent, OutboxMessage, ScheduleRequest
from tests.e2e.conftest import SlackBot, drained
from tests.e2e.teams_harness import TeamsBot
from tests.slackfake import select_value, text_value
from tests.teamsfake import card_of, personal_conversation_id
from vocab.states import Status

NUL_REFUSED = "contains a control character (U+0000); remove it and try again"


async def counts(runtime: Any) -> tuple[int, int, int]:
    async with runtime.uow.transaction() as s:
        return tuple(
            [
                int(await s.scalar(select(func.count()).select_from(m)) or 0)
                for m in (ScheduleRequest, AuditEvent, OutboxMessage)
            ]
        )


async def status_of(runtime: Any, request_id: str) -> str | None:
    async with runtime.uow.transaction() as s:
        return await s.scalar(
            select(ScheduleRequest.status).where(ScheduleRequest.short_id == request_id)
        )


async def slack_reply(slack: SlackBot, user: str, text: str, token: str) -> str:
    resp = await slack.command(user, text, token=token)
    assert resp.status == 200
    (answer,) = await slack.replies(token)
    return str(answer["text"])


async def test_slack_nul_in_command_and_modals_gets_a_clear_answer(slack: SlackBot):
    before = await counts(slack.runtime)
    answer = await slack_reply(
        slack, "U0BOB", "activate global-admin 1h rotate\x00the keys", "nul-command"
    )
    assert f"The command {NUL_REFUSED}." in answer, answer
    assert await counts(slack.runtime) == before

    resp = await slack.submit(
        "U0BOB",
        slack_cards.ACTIVATION_MODAL,
        {
            slack_cards.ROLE_BLOCK: {slack_cards.ROLE_ACTION: select_value("quick")},
            slack_cards.DURATION_BLOCK: {slack_cards.DURATION_ACTION: text_value("5m")},
            slack_cards.JUSTIFICATION_BLOCK: {
                slack_cards.JUSTIFICATION_ACTION: text_value("on call\x00")
            },
            slack_cards.TICKET_BLOCK: {slack_cards.TICKET_ACTION: text_value("INC\x01")},
        },
    )
    assert resp.status == 200
    assert await resp.json() == {
        "response_action": "errors",
        "errors": {
            slack_cards.JUSTIFICATION_BLOCK: f"The justification {NUL_REFUSED}.",
            slack_cards.TICKET_BLOCK: "The ticket contains a control character (U+0001); remove it and try again.",
        },
    }
    assert await counts(slack.runtime) == before

    answer = await slack_reply(slack, "U0BOB", "activate global-admin 1h rotate the keys", "ask")
    request_id = answer.split("Request ")[1].split(" ")[0]
    await slack.click("U0CAROL", v.DENY, request_id, token="deny")
    (opened,) = await slack.fake.wait_for("views.open")
    # The ask's notices fan out (one row per recipient) as the outbox sends them: let that
    # finish, so the count below measures only what the refused reason does.
    await drained(slack.runtime)
    before = await counts(slack.runtime)
    resp = await slack.submit(
        "U0CAROL",
        slack_cards.DECISION_MODAL,
        {slack_cards.REASON_BLOCK: {slack_cards.REASON_ACTION: text_value("no\x00pe")}},
        private_metadata=opened.args["view"]["private_metadata"],
    )
    assert resp.status == 200
    assert await resp.json() == {
        "response_action": "errors",
        "errors": {slack_cards.REASON_BLOCK: f"The justification {NUL_REFUSED}."},
    }
    assert await status_of(slack.runtime, request_id) == Status.PENDING_APPROVAL
    assert await counts(slack.runtime) == before

    # A Windows line end is no control character worth refusing: it is kept as a plain one.
    resp = await slack.submit(
        "U0CAROL",
        slack_cards.DECISION_MODAL,
        {slack_cards.REASON_BLOCK: {slack_cards.REASON_ACTION: text_value("no:\r\nfreeze")}},
        private_metadata=opened.args["view"]["private_metadata"],
    )
    assert resp.status == 200 and await resp.read() == b""
    assert await status_of(slack.runtime, request_id) == Status.DENIED
    async with slack.runtime.uow.transaction() as s:
        denied = await s.scalar(select(AuditEvent).where(AuditEvent.action == "request.denied"))
    assert denied is not None and denied.details["justification"] == "no:\nfreeze"


def to(who: str, words: str):  # noqa: ANN201 - a wait_for predicate
    conversation = personal_conversation_id(f"aad-{who}")
    return lambda c: (
        c.ok
        and c.conversation_id == conversation
        and words in json.dumps(c.body, ensure_ascii=False)
    )


async def test_teams_nul_in_a_message_and_a_card_reason_gets_a_clear_answer(teams: TeamsBot):
    for who in ("carol", "bob"):
        await teams.install(who)
    await teams.connector.wait_for("post", count=2)
    before = await counts(teams.runtime)
    resp = await teams.say("bob", "activate global-admin 1h rotate\x00the keys")
    assert resp.status in (200, 201)
    await teams.connector.wait_for("post", where=to("bob", f"The command {NUL_REFUSED}."))
    assert await counts(teams.runtime) == before

    resp = await teams.say("bob", "activate global-admin 1h rotate the keys")
    assert resp.status in (200, 201)

    def approval_card(c: Any) -> bool:
        return to("carol", v.APPROVE)(c) and card_of(c) is not None

    (card,) = await teams.connector.wait_for("post", where=approval_card)
    async with teams.runtime.uow.transaction() as s:
        request_id = await s.scalar(
            select(ScheduleRequest.short_id).where(
                ScheduleRequest.status == Status.PENDING_APPROVAL
            )
        )
    await drained(teams.runtime)  # the ask's other notices fan out as they are sent
    before = await counts(teams.runtime)
    result = await teams.click(
        "carol",
        v.DENY,
        {"request": request_id},
        card_id=card.activity_id or "",
        inputs={teams_cards.REASON_INPUT: "no\x00pe"},
    )
    assert result == {
        "statusCode": 200,
        "type": "application/vnd.microsoft.activity.message",
        "value": f"The justification {NUL_REFUSED}.",
    }
    assert await status_of(teams.runtime, request_id) == Status.PENDING_APPROVAL
    assert await counts(teams.runtime) == before
