"""What the Microsoft providers send alike: who, why, and the schedule with its expiration.

Every grant carries the activation's end as its expiration, so Entra and Azure end the access
themselves even if pim-bot is down at that moment; pim-bot's own revoke is then a no-op.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from handlers.grants.provider import GrantJob, ProviderError
from vocab.limits import MAX_JUSTIFICATION  # Graph's own cap is 500 characters too


def aware(when: datetime) -> datetime:
    """SQLite hands back naive datetimes; pim-bot stores UTC, so naive means UTC."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def wire_time(when: datetime) -> str:
    return aware(when).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def schedule_info(
    job: GrantJob, *, now: datetime | None = None, arm: bool = False
) -> dict[str, Any]:
    """scheduleInfo: from the activation's start (not earlier than now: a grant retried late
    starts when it lands) until its end. Graph spells the types in camelCase, ARM in Pascal."""
    now = now or datetime.now(UTC)
    end = aware(job.end) if job.end is not None else None
    if end is not None and end <= now:
        raise ProviderError(
            f"the activation ended at {wire_time(end)}; nothing to grant", permanent=True
        )
    start = max(aware(job.start), now)
    if end is None:
        expiration: dict[str, Any] = {"type": "NoExpiration" if arm else "noExpiration"}
    else:
        expiration = {
            "type": "AfterDateTime" if arm else "afterDateTime",
            "endDateTime": wire_time(end),
        }
    return {"startDateTime": wire_time(start), "expiration": expiration}


def justification(job: GrantJob) -> str:
    """The reason Entra and Azure record, naming pim-bot's request so an auditor can trace it."""
    reason = (job.justification or "").strip() or f"{job.role_name} activated"
    text = f"pim-bot {job.request_id}: {reason}"
    if job.ticket:
        text += f" (ticket {job.ticket})"
    return text[:MAX_JUSTIFICATION]


def principal_of(job: GrantJob) -> str:
    """The person's Entra object id; without one nothing can be granted in Microsoft's clouds."""
    if not job.person.teams_id:
        raise ProviderError(
            f"{job.person.email} has no Entra object id (teams_id) to grant {job.role_name} to",
            permanent=True,
        )
    return job.person.teams_id


def odata_quote(value: str) -> str:
    """A string literal for an OData $filter: single quotes doubled."""
    return "'" + value.replace("'", "''") + "'"
