"""A command that queued messages wakes the sender at once, not at the next periodic sweep:
the approver's card arrives within seconds although sweeps are minutes apart. (Slack
commands commit on the chat's own engine; the workers run on the main one.)"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.config import Settings
from bot.runtime import Runtime
from bot.server import make_app
from bot.slack.app import build_slack, mount
from handlers.policy import apply_policy
from tests.e2e.conftest import POLICY, SECRET, SlackBot, drained
from tests.e2e.slack_harness import ask
from tests.slackfake import FakeSlackAPI


@pytest.fixture
async def slow_sweeps(db_url: str) -> AsyncIterator[SlackBot]:
    async with FakeSlackAPI() as fake:
        settings = Settings.from_env(
            {
                "DATABASE_URL": db_url,
                "SLACK_BOT_TOKEN": "xoxb-test",
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_API_URL": fake.base_url,
                "PIM_SWEEP_SECONDS": "600",
            }
        )
        runtime = Runtime.build(settings)
        await runtime.prepare()
        await apply_policy(runtime.uow, runtime.clock, text=POLICY, source="test-policy.yaml")
        bundle = build_slack(settings, runtime.chat())
        web_app = make_app(runtime)
        mount(web_app, bundle.app)
        runtime.start_background([bundle.transport])  # the first sweep runs at once
        await drained(runtime)
        fake.clear()
        async with TestClient(TestServer(web_app, host="127.0.0.1")) as http:
            try:
                yield SlackBot(fake=fake, http=http, runtime=runtime)
            finally:
                await runtime.close()


async def test_approver_card_goes_out_at_once(slow_sweeps: SlackBot) -> None:
    answer = await ask(slow_sweeps, "activate global-admin 2h rotate keys")
    assert "waiting for approval" in answer
    (card,) = await slow_sweeps.fake.wait_for(
        "chat.postMessage", where=lambda c: c.args["channel"] == "U0CAROL", timeout=10
    )
    assert "Global Administrator" in str(card.args)
