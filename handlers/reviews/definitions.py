"""What an access review is: its definition (the policy file's `reviews:` entry) and when
each of its instances starts.

A definition is stored as the policy file spells it (`ReviewSpec.to_mapping()`), so the
policy export writes back exactly what was applied.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from handlers.durations import format_duration, parse_duration

SCOPES = ("eligible", "active", "all")
REVIEWER_KINDS = ("approvers", "admins", "self")  # or a list of emails
RECURRENCES = {
    "once": 0,
    "weekly": 0,
    "monthly": 1,
    "quarterly": 3,
    "semiannual": 6,
    "annual": 12,
}  # months between instances; weekly is 7 days
ON_NO_RESPONSE = ("keep", "remove", "recommendation")
# How far back pim-bot's own history is read for a recommendation.
LOOKBACK = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class ReviewSpec:
    id: str
    name: str
    roles: tuple[str, ...] | None  # None: every role
    assignments: str  # eligible | active | all
    reviewers: str | tuple[str, ...]  # approvers | admins | self | emails
    recurrence: str
    start: date
    duration: timedelta
    on_no_response: str = "keep"
    auto_apply: bool = True
    require_reason: bool = False

    def to_mapping(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "roles": "all" if self.roles is None else list(self.roles),
            "assignments": self.assignments,
            "reviewers": self.reviewers
            if isinstance(self.reviewers, str)
            else list(self.reviewers),
            "recurrence": self.recurrence,
            "start": self.start.isoformat(),
            "duration": format_duration(self.duration),
            "on_no_response": self.on_no_response,
            "auto_apply": self.auto_apply,
            "require_reason": self.require_reason,
        }

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> ReviewSpec:
        roles, reviewers = raw.get("roles", "all"), raw.get("reviewers", "approvers")
        return cls(
            id=raw["id"],
            name=raw["name"],
            roles=None if roles == "all" else tuple(roles),
            assignments=raw.get("assignments", "eligible"),
            reviewers=reviewers if isinstance(reviewers, str) else tuple(reviewers),
            recurrence=raw.get("recurrence", "once"),
            start=date.fromisoformat(str(raw["start"])),
            duration=parse_duration(str(raw["duration"])),
            on_no_response=raw.get("on_no_response", "keep"),
            auto_apply=bool(raw.get("auto_apply", True)),
            require_reason=bool(raw.get("require_reason", False)),
        )

    @property
    def self_review(self) -> bool:
        return self.reviewers == "self"


def _add_months(day: date, months: int) -> date:
    year, month = divmod(day.month - 1 + months, 12)
    year, month = day.year + year, month + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def instance_start(spec: ReviewSpec, number: int) -> datetime | None:
    """When instance `number` (1-based) is due: midnight UTC of its day, or None when a
    one-off review has no such instance."""
    if number < 1 or (spec.recurrence == "once" and number > 1):
        return None
    if spec.recurrence == "weekly":
        day = spec.start + timedelta(days=7 * (number - 1))
    else:
        day = _add_months(spec.start, RECURRENCES[spec.recurrence] * (number - 1))
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def next_instance(spec: ReviewSpec, *, after: int, now: datetime) -> tuple[int, datetime] | None:
    """The next scheduled instance after instance `after` that is not over yet at `now`
    (instances missed during a long outage are skipped, not opened late in a row)."""
    number = after + 1
    while (start := instance_start(spec, number)) is not None:
        if start + spec.duration > now:
            return number, start
        number += 1
    return None
