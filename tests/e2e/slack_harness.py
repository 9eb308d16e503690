"""What Slack tests do as a person: ask for a role with /pim and read the private answer."""

from __future__ import annotations

from tests.e2e.conftest import SlackBot


async def ask(slack: SlackBot, text: str, user: str = "U0BOB") -> str:
    resp = await slack.command(user, text, token="ask")
    assert resp.status == 200
    (reply,) = await slack.replies("ask")
    assert reply["response_type"] == "ephemeral"
    return reply["text"]
