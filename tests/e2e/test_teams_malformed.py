"""Garbage activities and invoke values at /api/messages: a 4xx or a polite answer, never a
500 or a traceback, and nothing changed."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import func, select

from cards import views as v
from storage.models import AuditEvent, OutboxMessage, ScheduleRequest
from tests.e2e.teams_harness import AAD, TeamsBot
from tests.teamsfake import invoke_action, message


def click(**value: Any) -> Any:
    def build(url: str) -> dict[str, Any]:
        body = invoke_action(
            v.APPROVE,
            {"request": "R-AAAA"},
            user_aad=AAD["carol"],
            service_url=url,
            reply_to_id="1",
        )
        body["value"] = value.get("value", body["value"])
        if "action" in value:
            body["value"] = {"action": value["action"], "trigger": "manual"}
        return body

    return build


def said(text: Any, **extra: Any) -> Any:
    def build(url: str) -> dict[str, Any]:
        body = message("roles", user_aad=AAD["bob"], service_url=url)
        body["text"] = text
        body.update(extra)
        return body

    return build


GARBAGE = {
    "invoke value is text": click(value="approve"),
    "invoke value is null": click(value=None),
    "invoke value is a list": click(value=[1, 2]),
    "action is text": click(action="approve"),
    "verb is a number": click(action={"type": "Action.Execute", "verb": 7, "data": {}}),
    "data is a list": click(action={"type": "Action.Execute", "verb": v.APPROVE, "data": [1]}),
    "request id is an object": click(
        action={"type": "Action.Execute", "verb": v.CANCEL, "data": {"request": {"x": 1}}}
    ),
    "reason is a number": click(
        action={
            "type": "Action.Execute",
            "verb": v.DENY,
            "data": {"request": "R-AAAA", "reason": 5},
        }
    ),
    "text is a number": said(12345),
    "text is an object": said({"a": 1}),
    "channel data is a list": said("roles", channelData=[1]),
    "no sender": said("roles", **{"from": None}),
    "conversation is text": said("roles", conversation="nope"),
    "unknown activity type": said("roles", type="weird"),
}


async def counts(teams: TeamsBot) -> dict[str, int]:
    async with teams.runtime.uow.transaction() as s:
        return {
            m.__name__: await s.scalar(select(func.count()).select_from(m)) or 0
            for m in (ScheduleRequest, AuditEvent, OutboxMessage)
        }


@pytest.mark.parametrize("case", list(GARBAGE))
async def test_garbage_activities_get_a_4xx_or_a_polite_answer(
    teams: TeamsBot, caplog: pytest.LogCaptureFixture, case: str
):
    before = await counts(teams)
    with caplog.at_level(logging.INFO):
        resp = await teams.post(GARBAGE[case](teams.connector.service_url))
        text = await resp.text()
    assert resp.status < 500, (resp.status, text)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], [
        (r.name, r.getMessage()) for r in caplog.records if r.exc_info or r.levelno >= 40
    ]
    assert await counts(teams) == before
