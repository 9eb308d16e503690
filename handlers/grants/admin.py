"""The admins' view of grants: `pim-bot grants [--failed]` and the chat command `grants`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from cards.views import Reply
from handlers.directory import require_principal
from handlers.errors import Forbidden
from handlers.grants.targets import describe, from_json
from storage.models import Grant, Principal, ScheduleRequest
from storage.uow import UnitOfWork
from vocab.states import GrantStatus


@dataclass(frozen=True, slots=True)
class GrantLine:
    grant_id: str
    person: str
    role: str
    request: str | None
    target: str
    phase: str
    status: str
    attempts: int
    updated: datetime
    error: str | None


async def grant_lines(uow: UnitOfWork, *, failed_only: bool, limit: int = 200) -> list[GrantLine]:
    """The most recent grants (or only those in Failed), newest first."""
    stmt = (
        select(Grant, Principal.email, ScheduleRequest.short_id)
        .join(Principal, Principal.id == Grant.principal_id)
        .outerjoin(ScheduleRequest, ScheduleRequest.id == Grant.request_id)
    )
    if failed_only:
        stmt = stmt.where(Grant.status == GrantStatus.FAILED)
    async with uow.read() as s:
        rows = (await s.execute(stmt.order_by(Grant.id.desc()).limit(limit))).all()
    return [
        GrantLine(
            grant_id=g.grant_id,
            person=email,
            role=g.role_id,
            request=short,
            target=describe(from_json(g.target)),
            phase=g.phase,
            status=str(g.status),
            attempts=g.attempts,
            updated=g.revoked_at or g.provisioned_at or g.created_at,
            error=g.last_error,
        )
        for g, email, short in rows
    ]


async def grants_reply(uow: UnitOfWork, *, actor: str, failed_only: bool) -> Reply:
    """Chat `grants [failed]`, for admins."""
    async with uow.read() as s:
        me = await require_principal(s, actor)
    if not me.admin:
        raise Forbidden("Only admins can list grants.")
    lines = await grant_lines(uow, failed_only=failed_only, limit=20)
    if not lines:
        return Reply(text="No failed grants." if failed_only else "No grants yet.")
    title = "Failed grants" if failed_only else "Recent grants"
    body = [
        f"{g.status} · {g.person} · {g.role} · {g.target}"
        + (f" · {g.request}" if g.request else "")
        + (f" · {g.error}" if g.error and g.status == GrantStatus.FAILED else "")
        for g in lines
    ]
    return Reply(text="\n".join([f"{title} (newest first):", *body]))
