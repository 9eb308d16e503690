"""Grant jobs as the engine hands them to a provider."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from handlers.grants.provider import GrantJob, Person, Target, TargetKind

BOB = Person(
    email="bob@contoso.com",
    name="Bob Builder",
    slack_id="U0BOB",
    teams_id="11111111-2222-3333-4444-555555555555",
)
CAROL = Person(
    email="carol@contoso.com",
    name="Carol Chen",
    slack_id="U0CAROL",
    teams_id="66666666-7777-8888-9999-000000000000",
)


def job(
    kind: TargetKind,
    ref: str,
    *,
    scope: str | None = None,
    access: str | None = None,
    person: Person = BOB,
    hours: float | None = 1.0,
    grant_id: str = "G-1",
    justification: str = "INC-42 database is down",
) -> GrantJob:
    start = datetime.now(UTC)
    return GrantJob(
        grant_id=grant_id,
        action="grant",
        target=Target(kind=kind, ref=ref, scope=scope, access=access),
        person=person,
        role_id="db-admin",
        role_name="Database Admin",
        request_id="R-7K2Q",
        start=start,
        end=start + timedelta(hours=hours) if hours is not None else None,
        justification=justification,
        ticket="INC-42",
    )


def undo(grant: GrantJob, action: Literal["grant", "revoke"] = "revoke") -> GrantJob:
    return replace(grant, action=action)


def wire(when: datetime | None) -> str | None:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else None
