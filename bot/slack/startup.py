"""Start-up check of the Slack bot token: does Slack take it, with every scope the manifest
asks for? A wrong token or a missing scope otherwise shows only later, as messages that fail
to send."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.checks import Check
from bot.config import Settings

# The bot scopes slack-manifest.yml declares (tests/unit/test_slack_scopes.py keeps the two
# equal): every one is used, so a token without one fails somewhere.
SCOPES = frozenset(
    {
        "commands",
        "chat:write",
        "chat:write.public",
        "im:write",
        "im:history",
        "channels:history",
        "groups:history",
        "users:read",
        "users:read.email",
        "usergroups:read",
        "usergroups:write",
    }
)
_REINSTALL = (
    "add it under OAuth & Permissions (or paste slack-manifest.yml again), "
    "reinstall the app and copy the new Bot User OAuth Token into SLACK_BOT_TOKEN"
)


def _client(settings: Settings) -> AsyncWebClient:
    base_url = settings.slack_api_url or AsyncWebClient.BASE_URL
    return AsyncWebClient(
        token=settings.slack_bot_token,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
    )


async def check_slack(settings: Settings) -> list[Check]:
    """auth.test with the bot token, then its scopes (the X-OAuth-Scopes header) against the
    manifest's, and the clock against Slack's (requests more than 5 minutes off are refused)."""
    if not settings.slack_bot_token:
        return [Check.skip("slack", "SLACK_BOT_TOKEN is not set")]
    try:
        auth: Any = await _client(settings).auth_test()
    except SlackApiError as err:
        error = err.response.get("error") if err.response is not None else None
        return [
            Check.failed(
                "slack",
                f"Slack refused SLACK_BOT_TOKEN ({error or err})",
                "copy the Bot User OAuth Token (xoxb-…) from the app's OAuth & "
                "Permissions page into SLACK_BOT_TOKEN",
            )
        ]
    except Exception as err:  # the network edge: DNS, TLS, a proxy
        return [
            Check.failed(
                "slack",
                f"Slack did not answer auth.test ({type(err).__name__}: {err})",
                "check the network path to Slack and SLACK_API_URL",
            )
        ]
    checks = [
        Check.passed(
            "slack",
            f"bot {auth.get('user')} in workspace {auth.get('team')} ({auth.get('team_id')})",
        )
    ]
    headers = {k.lower(): v for k, v in (auth.headers or {}).items()}
    granted = {s.strip() for s in (headers.get("x-oauth-scopes") or "").split(",") if s.strip()}
    missing = sorted(SCOPES - granted)
    if missing:
        checks.append(
            Check.failed("slack scopes", "the bot token lacks " + ", ".join(missing), _REINSTALL)
        )
    else:
        checks.append(Check.passed("slack scopes", f"all {len(SCOPES)} of the manifest's"))
    checks.append(_clock(headers.get("date")))
    return checks


def _clock(date: str | None) -> Check:
    if not date:
        return Check.skip("clock", "Slack sent no Date header to compare with")
    try:
        skew = (datetime.now(UTC) - parsedate_to_datetime(date)).total_seconds()
    except (TypeError, ValueError):
        return Check.skip("clock", f"Slack's Date header {date[:40]!r} is not a date")
    if abs(skew) > 60:
        return Check.failed(
            "clock",
            f"this machine's clock is {skew:+.0f} s off Slack's",
            "synchronise the clock (NTP): Slack refuses requests signed more than 5 minutes off",
        )
    return Check.passed("clock", f"within {abs(skew):.0f} s of Slack's")
