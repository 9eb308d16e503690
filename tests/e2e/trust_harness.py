"""Running pim-bot the way the trust tests need it: Slack with chosen settings (a pinned
SLACK_TEAM_ID, or two replicas on one database), Teams with a tenant list, and reading the
answer a person sees whether it came in the HTTP answer or through the response_url."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.config import Settings
from bot.runtime import Runtime
from bot.server import make_app
from bot.slack.app import build_slack, mount
from bot.teams.app import build_teams
from bot.teams.app import mount as mount_teams
from handlers.policy import apply_policy
from storage.models import AuditEvent, OutboxMessage, Principal
from tests.e2e.conftest import POLICY, SECRET, SlackBot, drained
from tests.e2e.teams_harness import TeamsBot
from tests.slackfake import FakeSlackAPI
from tests.slackfake.server import PATIENCE
from tests.teamsfake import FakeConnector


@asynccontextmanager
async def running_slack(
    db_url: str, fake: FakeSlackAPI, *, env: Mapping[str, str] = {}, policy: bool = True
) -> AsyncIterator[SlackBot]:
    settings = Settings.from_env(
        {
            "DATABASE_URL": db_url,
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": fake.base_url,
            "PIM_SWEEP_SECONDS": "1",
            **env,
        }
    )
    runtime = Runtime.build(settings)
    await runtime.prepare()
    if policy:
        await apply_policy(runtime.uow, runtime.clock, text=POLICY, source="test-policy.yaml")
    bundle = build_slack(settings, runtime.chat())
    web_app = make_app(runtime)
    mount(web_app, bundle.app)
    runtime.start_background([bundle.transport])
    await drained(runtime)
    async with TestClient(TestServer(web_app, host="127.0.0.1")) as http:
        try:
            yield SlackBot(fake=fake, http=http, runtime=runtime)
        finally:
            await runtime.close()


@asynccontextmanager
async def running_teams(
    db_url: str, connector: FakeConnector, *, env: Mapping[str, str]
) -> AsyncIterator[TeamsBot]:
    settings = Settings.from_env(
        {
            "DATABASE_URL": db_url,
            "PIM_TEAMS_ALLOW_UNAUTHENTICATED": "1",
            "PIM_SWEEP_SECONDS": "1",
            **env,
        }
    )
    runtime = Runtime.build(settings)
    await runtime.prepare()
    await apply_policy(runtime.uow, runtime.clock, text=POLICY, source="test-policy.yaml")
    bundle = build_teams(settings, runtime.chat("teams"))
    web_app = make_app(runtime)
    mount_teams(web_app, bundle)
    runtime.start_background([bundle.transport])
    await drained(runtime)
    async with TestClient(TestServer(web_app, host="127.0.0.1")) as http:
        try:
            yield TeamsBot(connector=connector, http=http, runtime=runtime)
        finally:
            await runtime.close()


async def private_answer(
    slack: SlackBot,
    resp: ClientResponse,
    token: str,
    timeout: float = PATIENCE,  # noqa: ASYNC109
) -> dict[str, Any]:
    """What the person who sent a command or click reads: the answer in the HTTP response
    body when there is one, else the one posted to the response_url."""
    text = await resp.text()
    if text.strip().startswith("{"):
        body = json.loads(text)
        if body.get("text") or body.get("blocks"):
            return dict(body)
    calls = await slack.fake.wait_for(
        "response_url", timeout=timeout, where=lambda c: c.path.endswith(f"/{token}")
    )
    return dict(calls[0].args)


async def principal(runtime: Runtime, email: str) -> Principal:
    async with runtime.uow.transaction() as s:
        person = await s.scalar(select(Principal).where(Principal.email == email))
    assert person is not None
    return person


async def audit_events(runtime: Runtime, action: str) -> list[AuditEvent]:
    async with runtime.uow.transaction() as s:
        return list(
            (
                await s.scalars(
                    select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
                )
            ).all()
        )


async def outbox(runtime: Runtime, kind: str) -> list[OutboxMessage]:
    """The messages of this kind the engine wrote (not the per-transport copies delivery
    makes of them)."""
    async with runtime.uow.transaction() as s:
        return list(
            (
                await s.scalars(
                    select(OutboxMessage)
                    .where(OutboxMessage.kind == kind, OutboxMessage.parent_id.is_(None))
                    .order_by(OutboxMessage.id)
                )
            ).all()
        )
