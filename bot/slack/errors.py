"""Slack Web API failures as grant-provider errors: retryable or permanent, with Retry-After."""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError

from handlers.grants.provider import ProviderError

# Errors no retry will fix: a missing scope or user group, a token that is not allowed.
PERMANENT = frozenset(
    {
        "no_such_subteam",
        "subteam_not_found",
        "missing_scope",
        "not_allowed_token_type",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "permission_denied",
        "no_permission",
        "invalid_users",
        "user_not_found",
        "paid_teams_only",
        "plan_upgrade_required",
        "restricted_action",
        "ekm_access_denied",
        "invalid_arguments",
        "not_allowed",
    }
)


def slack_failure(method: str, err: Exception) -> ProviderError:
    """The ProviderError for a failed Slack call (SlackApiError, network error or timeout)."""
    if isinstance(err, SlackApiError):
        code = str(err.response.get("error") or "unknown_error")
        if err.response.status_code == 429:
            hint = err.response.headers.get("Retry-After") or err.response.headers.get(
                "retry-after"
            )
            wait = float(hint) if hint and str(hint).replace(".", "", 1).isdigit() else 1.0
            return ProviderError(f"Slack {method} is rate limited", retry_after=wait)
        return ProviderError(f"Slack {method} failed: {code}", permanent=code in PERMANENT)
    if isinstance(err, TimeoutError):
        return ProviderError(f"Slack {method} did not answer in time")
    if isinstance(err, aiohttp.ClientError):
        return ProviderError(f"Slack {method} could not be reached: {err}")
    raise err
