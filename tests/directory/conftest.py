"""People from the directory, group eligibility and reconciliation: the engine on a real
database (SQLite and PostgreSQL), the real readers and providers against the loopback fakes
(Microsoft over HTTPS with a test CA, the Slack Web API fake)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.config import Settings
from bot.directory_wiring import Microsoft, directory_readers
from bot.slack.workspace_source import workspace_source
from tests.providers.conftest import apis, ms  # noqa: F401  (the Microsoft fakes, HTTPS)
from tests.slackfake import FakeSlackAPI
from tests.unit.conftest import eng  # noqa: F401  (Alice (admin), Bob, Carol, Dave)

GROUP = "0c1c6a6e-6a55-4a3e-9f5e-8b1f6b8d2a10"
OTHER_GROUP = "7d2e1f30-1111-4a3e-9f5e-8b1f6b8d2a11"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlackAPI]:
    async with FakeSlackAPI() as fake:
        yield fake


@pytest.fixture
async def microsoft() -> AsyncIterator[Microsoft]:
    made = Microsoft()
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
def readers(ms, slack, microsoft):  # noqa: F811
    """The production wiring of directory readers, pointed at the fakes."""
    settings = Settings(
        database_url="sqlite://",
        slack_bot_token="xoxb-test",
        slack_api_url=slack.base_url,
        slack_team_id="T1",
    )
    return directory_readers(microsoft, slack=workspace_source(settings))
