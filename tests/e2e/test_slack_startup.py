"""Starting Slack says nothing alarming when nothing is wrong."""

from __future__ import annotations

import logging
import os

import pytest

from bot.config import Settings
from bot.runtime import Runtime
from bot.slack.app import build_slack


async def test_no_token_will_be_unused_warning(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    env = {
        "DATABASE_URL": sqlite_url,
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_SIGNING_SECRET": "s3cret",
    }
    for key, value in env.items():  # Bolt reads SLACK_BOT_TOKEN from the environment too
        monkeypatch.setenv(key, value)
    runtime = Runtime.build(Settings.from_env(env))
    try:
        with caplog.at_level(logging.WARNING):
            build_slack(runtime.settings, runtime.chat())
    finally:
        await runtime.close()
    assert not [r for r in caplog.records if "unused" in r.getMessage()], caplog.text
    assert os.environ["SLACK_BOT_TOKEN"] == "xoxb-test"  # put back as it was
