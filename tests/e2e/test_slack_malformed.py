"""Signed but malformed Slack requests: a 4xx and one log line, never a 500 or a traceback,
and nothing changed."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
from sqlalchemy import func, select

from cards import slack as cards
from cards import views as v
from storage.models import AuditEvent, OutboxMessage, ScheduleRequest
from tests.e2e.conftest import SECRET, SlackBot
from tests.slackfake import block_action, slash_command, view_submission


def form(payload: Any) -> bytes:
    raw = payload if isinstance(payload, str) else json.dumps(payload)
    return urlencode({"payload": raw}).encode()


def click_payload(**changes: Any) -> dict[str, Any]:
    body = block_action(v.APPROVE, "R-AAAA", user_id="U0CAROL")
    payload = json.loads(parse_qs(body.decode())["payload"][0])
    for key, value in changes.items():
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = value
    return payload


def decision_with_metadata(metadata: str) -> bytes:
    return view_submission(
        cards.DECISION_MODAL,
        {cards.REASON_BLOCK: {cards.REASON_ACTION: {"type": "plain_text_input", "value": "fine"}}},
        user_id="U0CAROL",
        private_metadata=metadata,
    )


MALFORMED: dict[str, bytes] = {
    "payload is not JSON": form("{not json"),
    "payload is a list": form([1, 2]),
    "no actions": form(click_payload(actions=[])),
    "actions is not a list": form(click_payload(actions="approve")),
    "action without a value": form(click_payload(actions=[{"action_id": v.APPROVE}])),
    "action is not an object": form(click_payload(actions=["approve"])),
    "click without user": form(click_payload(user=None)),
    "click with user without id": form(click_payload(user={"name": "x"})),
    "metadata is not JSON": decision_with_metadata("{{{"),
    "metadata is a list": decision_with_metadata("[1]"),
    "slash command without user": slash_command("roles", user_id="").replace(b"&user_id=&", b"&"),
    "view without state": form(
        {"type": "view_submission", "user": {"id": "U0CAROL"}, "view": "nope"}
    ),
}


async def counts(slack: SlackBot) -> dict[str, int]:
    async with slack.runtime.uow.transaction() as s:
        return {
            m.__name__: await s.scalar(select(func.count()).select_from(m)) or 0
            for m in (ScheduleRequest, AuditEvent, OutboxMessage)
        }


def signed_with_timestamp(body: bytes, ts: str) -> dict[str, str]:
    base = b"v0:" + ts.encode() + b":" + body
    digest = hmac.new(SECRET.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }


def assert_one_quiet_line(caplog: pytest.LogCaptureFixture) -> None:
    ours = [r for r in caplog.records if r.name.startswith("bot.")]
    assert len(ours) == 1, [r.getMessage() for r in ours]
    assert all(r.exc_info is None and r.levelno < logging.ERROR for r in caplog.records), [
        (r.name, r.getMessage()) for r in caplog.records if r.exc_info or r.levelno >= 40
    ]


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_malformed_signed_payloads_get_a_4xx_and_one_log_line(
    slack: SlackBot, caplog: pytest.LogCaptureFixture, case: str
):
    before = await counts(slack)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        resp = await slack.post(MALFORMED[case])
        assert 400 <= resp.status < 500, (resp.status, await resp.text())
    assert_one_quiet_line(caplog)
    assert await counts(slack) == before
    assert slack.fake.calls("response_url") == []


@pytest.mark.parametrize("ts", ["abc", "", "1e9", "-5"])
async def test_a_timestamp_that_is_not_a_number_is_refused(
    slack: SlackBot, caplog: pytest.LogCaptureFixture, ts: str
):
    body = slash_command("activate quick 1m", user_id="U0BOB")
    before = await counts(slack)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        resp = await slack.http.post(
            "/slack/events", data=body, headers=signed_with_timestamp(body, ts)
        )
        assert 400 <= resp.status < 500, (resp.status, await resp.text())
    assert_one_quiet_line(caplog)
    assert await counts(slack) == before
