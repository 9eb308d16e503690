"""The Slack workspace as a directory source (`directory: [{slack: workspace}]`)."""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.slack.directory import workspace_people
from handlers.grants.provider import Person


def workspace_source(settings: Settings) -> SlackWorkspaceSource | None:
    if not settings.slack_bot_token:
        return None
    return SlackWorkspaceSource(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        team_id=settings.slack_team_id,
    )


class SlackWorkspaceSource:
    def __init__(self, *, token: str, base_url: str | None, team_id: str | None) -> None:
        self.token, self.base_url, self.team_id = token, base_url, team_id

    async def people(self) -> list[Person]:
        client = AsyncWebClient(token=self.token, base_url=self.base_url or AsyncWebClient.BASE_URL)
        return await workspace_people(client=client, team_id=self.team_id)
