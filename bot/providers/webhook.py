"""Grants as webhooks, signed per the Standard Webhooks spec (the `standardwebhooks` package).

Each event has one `webhook-id`, the same on every retry (derived from the grant id and the
action, and for `grant.extended` the new end), so a receiver that remembers the ids it has acted on acts once however many times
a crash or a timeout makes us send it. Answers: 2xx done; 429/503 wait (Retry-After);
other 5xx, 408 and timeouts retried; any other 4xx is permanent.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from standardwebhooks.webhooks import Webhook

from bot.providers.schedule import aware
from handlers.grants.provider import GrantJob, ProviderError, Target
from handlers.grants.targets import to_json

logger = logging.getLogger(__name__)

EVENT = {"grant": "grant.activated", "extend": "grant.extended", "revoke": "grant.revoked"}
_WAIT = (429, 503)


def webhook_id(job: GrantJob) -> str:
    """One id per event: a grant is activated and revoked once, but may be extended many
    times, so an extension's id also names its new end (the same on every retry of it)."""
    if job.action == "extend":
        end = int(aware(job.end).timestamp()) if job.end else 0
        return f"msg_{job.grant_id}_extend_{end}"
    return f"msg_{job.grant_id}_{job.action}"


def body(job: GrantJob, *, now: datetime) -> dict[str, Any]:
    who = job.person
    return {
        "type": EVENT[job.action],
        "timestamp": _iso(now),
        "data": {
            "grant_id": job.grant_id,
            "request_id": job.request_id,
            "principal": {
                "email": who.email,
                "name": who.name,
                "slack_id": who.slack_id,
                "teams_id": who.teams_id,
            },
            "role": {"id": job.role_id, "name": job.role_name},
            "target": to_json(job.target),
            "start": _iso(job.start),
            "end": _iso(job.end) if job.end else None,
            "justification": job.justification,
            "ticket": job.ticket,
        },
    }


class WebhookProvider:
    """POSTs each grant and revoke to the target's URL. `members` is None: a webhook's
    receiver cannot be read back."""

    def __init__(self, *, secret: str, timeout: float = 10.0) -> None:
        self._signer = Webhook(secret)  # refuses an empty or malformed secret at start-up
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._http: aiohttp.ClientSession | None = None

    async def grant(self, job: GrantJob) -> None:
        await self._post(job)

    async def extend(self, job: GrantJob) -> None:
        await self._post(job)  # grant.extended, with the new end

    async def revoke(self, job: GrantJob) -> None:
        await self._post(job)

    async def members(self, target: Target) -> frozenset[str] | None:
        return None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _post(self, job: GrantJob) -> None:
        now = datetime.now(UTC)
        data = json.dumps(body(job, now=now), separators=(",", ":"))
        msg_id = webhook_id(job)
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._signer.sign(msg_id, now, data),
        }
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._http.post(
                job.target.ref, data=data.encode(), headers=headers, allow_redirects=False
            ) as resp:
                text = (await resp.text())[:200]
                _check(resp.status, resp.headers.get("Retry-After"), text)
        except (TimeoutError, aiohttp.ClientError) as err:
            raise ProviderError(f"webhook unreachable: {type(err).__name__} {err}") from err


def _check(status: int, retry_after: str | None, text: str) -> None:
    if 200 <= status < 300:
        return
    reason = f"webhook answered HTTP {status}" + (f": {text}" if text else "")
    if status in _WAIT:
        raise ProviderError(reason, retry_after=_seconds(retry_after))
    if status >= 500 or status == 408:
        raise ProviderError(reason)
    raise ProviderError(reason, permanent=True)


def _seconds(header: str | None) -> float | None:
    """Retry-After as seconds or as an HTTP date; None when absent or unreadable."""
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(header) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")
