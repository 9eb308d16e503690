"""A running pim-bot with Slack on: real Bolt dispatch of signed requests, the real engine on a
real database, and a local fake of the Slack Web API on a loopback port."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.config import Settings
from bot.runtime import Runtime
from bot.server import make_app
from bot.slack.app import build_slack, mount
from bot.teams.app import build_teams
from bot.teams.app import mount as mount_teams
from handlers.policy import apply_policy
from storage.models import OutboxMessage
from tests.e2e.teams_harness import TeamsBot
from tests.slackfake import (
    FakeSlackAPI,
    block_action,
    select_value,
    sign,
    slash_command,
    text_value,
    view_submission,
)
from tests.teamsfake import FakeConnector

SECRET = "test-signing-secret"
POLICY = """
admins: [alice@contoso.com]
principals:
  - {email: alice@contoso.com, name: Alice Admin, slack_id: U0ALICE, teams_id: aad-alice}
  - {email: bob@contoso.com,   name: Bob Builder, slack_id: U0BOB, teams_id: aad-bob}
  - {email: carol@contoso.com, name: Carol Chen,  slack_id: U0CAROL, teams_id: aad-carol}
  - {email: erin@contoso.com,  name: Erin Ersatz, slack_id: U0ERIN}
  - {email: dave@contoso.com,  name: Dave Duty}
roles:
  - id: global-admin
    name: Global Administrator
    settings: {require_approval: true, approvers: [carol@contoso.com, erin@contoso.com],
               approver_justification: false, approval_channel: {slack: C0APPROVALS}}
  - id: secret-admin
    name: Secret Administrator
    settings: {require_approval: true, approvers: [carol@contoso.com]}
  - id: quick
    name: Quick Role
    settings: {min_duration: 1s, max_duration: 1h, require_justification: false,
               expiry_warning: 2s, min_active_before_deactivate: 1s}
  - id: slow-approval
    name: Slow Approval
    settings: {require_approval: true, approvers: [carol@contoso.com],
               approver_justification: false, approval_timeout: 2s}
assignments:
  - {principal: bob@contoso.com,  role: global-admin, type: eligible}
  - {principal: bob@contoso.com,  role: secret-admin, type: eligible}
  - {principal: bob@contoso.com,  role: quick,        type: eligible}
  - {principal: bob@contoso.com,  role: slow-approval, type: eligible}
  - {principal: dave@contoso.com, role: global-admin, type: eligible}
"""


@dataclass
class SlackBot:
    fake: FakeSlackAPI
    http: TestClient
    runtime: Runtime
    # Answers that came back in the HTTP ack body (commit before you answer), by token.
    acked: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    async def post(
        self, body: bytes, *, secret: str = SECRET, timestamp: int | None = None
    ) -> ClientResponse:
        return await self.http.post(
            "/slack/events", data=body, headers=sign(body, secret, timestamp=timestamp)
        )

    async def command(self, user: str, text: str, *, token: str | None = None) -> ClientResponse:
        token = token or f"{user}-{time.time_ns()}"
        body = slash_command(text, user_id=user, response_url=self.fake.response_url(token))
        return await self._answered(token, await self.post(body))

    async def click(
        self,
        user: str,
        action_id: str,
        value: str,
        *,
        posted: dict[str, Any] | None = None,
        token: str | None = None,
    ) -> ClientResponse:
        kwargs: dict[str, Any] = {}
        if posted is not None:
            kwargs = {"message": posted.get("message"), "channel_id": posted.get("channel")}
        token = token or f"{user}-{time.time_ns()}"
        body = block_action(
            action_id, value, user_id=user, response_url=self.fake.response_url(token), **kwargs
        )
        return await self._answered(token, await self.post(body))

    async def _answered(self, token: str, resp: ClientResponse) -> ClientResponse:
        text = await resp.text()  # aiohttp keeps the body: the test can still read it
        if resp.status == 200 and text.startswith("{"):
            self.acked.setdefault(token, []).append(json.loads(text))
        return resp

    async def submit(
        self,
        user: str,
        callback_id: str,
        values: dict[str, dict[str, Any]],
        *,
        private_metadata: str = "",
    ) -> ClientResponse:
        return await self.post(
            view_submission(callback_id, values, user_id=user, private_metadata=private_metadata)
        )

    async def replies(self, token: str, *, count: int = 1) -> list[dict[str, Any]]:
        """The private answers to the requests sent with `token`: in the ack body, else
        posted to the response_url."""
        acked = self.acked.get(token, [])[:count]
        if len(acked) == count:
            return acked
        calls = await self.fake.wait_for(
            "response_url", count=count - len(acked), where=lambda c: c.path.endswith(f"/{token}")
        )
        return acked + [c.args for c in calls]


async def drained(runtime: Runtime, within: float = 60.0) -> None:
    """Wait until the outbox has nothing left to send."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with runtime.uow.transaction() as s:
            left = await s.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status.in_(["pending", "sending"]))
            )
        if not left:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"outbox still has {left} messages after {within}s")


@pytest.fixture
async def teams(db_url: str) -> AsyncIterator[TeamsBot]:
    async with FakeConnector() as connector:
        connector.add_member("aad-dave", "Dave Duty", "dave@contoso.com")
        settings = Settings.from_env(
            {
                "DATABASE_URL": db_url,
                "PIM_TEAMS_ALLOW_UNAUTHENTICATED": "1",
                "PIM_SWEEP_SECONDS": "1",
            }
        )
        runtime = Runtime.build(settings)
        await runtime.prepare()
        await apply_policy(runtime.uow, runtime.clock, text=POLICY, source="test-policy.yaml")
        bundle = build_teams(settings, runtime.chat("teams"))
        web_app = make_app(runtime)
        mount_teams(web_app, bundle)
        runtime.start_background([bundle.transport])
        await drained(runtime)  # nobody has a Teams conversation yet: all unreachable
        async with TestClient(TestServer(web_app, host="127.0.0.1")) as http:
            try:
                yield TeamsBot(connector=connector, http=http, runtime=runtime)
            finally:
                await runtime.close()


@pytest.fixture
async def slack(db_url: str) -> AsyncIterator[SlackBot]:
    async with FakeSlackAPI() as fake:
        fake.add_user(id="U0DAVE", email="dave@contoso.com", name="Dave Duty")
        fake.add_user(id="U0ZED", email="zed@elsewhere.com", name="Zed Stranger")
        settings = Settings.from_env(
            {
                "DATABASE_URL": db_url,
                "SLACK_BOT_TOKEN": "xoxb-test",
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_API_URL": fake.base_url,
                "PIM_SWEEP_SECONDS": "1",
            }
        )
        runtime = Runtime.build(settings)
        await runtime.prepare()
        await apply_policy(runtime.uow, runtime.clock, text=POLICY, source="test-policy.yaml")
        bundle = build_slack(settings, runtime.chat())
        web_app = make_app(runtime)
        mount(web_app, bundle.app)
        runtime.start_background([bundle.transport])
        await drained(runtime)  # the policy's "you are eligible" DMs
        fake.clear()
        async with TestClient(TestServer(web_app, host="127.0.0.1")) as http:
            try:
                yield SlackBot(fake=fake, http=http, runtime=runtime)
            finally:
                await runtime.close()


__all__ = ["SECRET", "SlackBot", "select_value", "text_value"]
