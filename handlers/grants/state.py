"""The grant state machine, written in the transaction of the change it follows.

An activation taking effect queues one grant row per target of its role; access ending
(expiry, deactivation, removal, cancel) moves that activation's rows to revoke, in a few
set-based statements, so a batch of 500 expiries costs the same handful of statements.

    PendingProvisioning -> Provisioned -> PendingRevoke -> Revoked
            |                 ^     |             |
            |                 |     v             +-> Failed (phase "revoke")
            |          PendingExtension (the end moved: handlers.grants.extension)
            +-> Failed
            +-> Canceled (ended before any attempt: nothing to take back)
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.grants.targets import PLACE, targets_of, to_json
from storage.models import Grant, Role, Schedule
from storage.uow import note_queued
from vocab.states import GrantStatus

GRANT, EXTEND, REVOKE = "grant", "extend", "revoke"


async def open_grants(
    session: AsyncSession, *, schedule: Schedule, role: Role, now: datetime
) -> list[str]:
    """Queue the grants of an activation that takes effect now; return the lines its card
    shows ("Entra: provisioning…"). A role without `grant:` queues nothing."""
    await open_many(
        session,
        items=[Holding(schedule.id, schedule.request_id, schedule.principal_id, role)],
        now=now,
    )
    return [f"{PLACE[t.kind]}: provisioning…" for t in targets_of(role.grant_targets)]


@dataclass(frozen=True, slots=True)
class Holding:
    """An active schedule about to take effect: what its grant rows are made of."""

    schedule_id: int
    request_id: int | None
    principal_id: int
    role: Role


async def open_many(session: AsyncSession, *, items: Sequence[Holding], now: datetime) -> None:
    """Queue the grants of many active schedules in one INSERT (admin and policy assignments)."""
    rows = [
        {
            "grant_id": uuid.uuid4().hex,
            "schedule_id": h.schedule_id,
            "request_id": h.request_id,
            "principal_id": h.principal_id,
            "role_id": h.role.id,
            "kind": t.kind,
            "target": to_json(t),
            "phase": GRANT,
            "status": GrantStatus.PENDING_PROVISIONING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for h in items
        for t in targets_of(h.role.grant_targets)
    ]
    if rows:
        await session.execute(insert(Grant), rows)
        note_queued(session)


async def revoke_grants(
    session: AsyncSession, *, schedule_ids: Sequence[int], now: datetime
) -> None:
    """Take back what these schedules were granted. Three UPDATEs whatever the number."""
    if not schedule_ids:
        return
    mine = Grant.schedule_id.in_(list(schedule_ids))
    pending = Grant.status == GrantStatus.PENDING_PROVISIONING
    # Access there now (a grant or an extension on its way; an extension that gave up).
    held = or_(
        Grant.status.in_([GrantStatus.PROVISIONED, GrantStatus.PENDING_EXTENSION]),
        and_(Grant.status == GrantStatus.FAILED, Grant.phase == EXTEND),
    )
    in_flight = and_(Grant.claimed_by.is_not(None), Grant.next_attempt_at > now)
    quiet = dict(synchronize_session=False)
    # Never tried and nobody trying: there is nothing to take back.
    await session.execute(
        update(Grant)
        .where(mine, pending, Grant.attempted_at.is_(None), ~in_flight)
        .values(status=GrantStatus.CANCELED, phase=REVOKE, revoked_at=now, claimed_by=None)
        .execution_options(**quiet)
    )
    # A grant or extend call in flight: the revoke waits for it. Its worker sees the new
    # status when it records the outcome and hands the row back (storage.grant_claims.release).
    await session.execute(
        update(Grant)
        .where(mine, or_(pending, Grant.status == GrantStatus.PENDING_EXTENSION), in_flight)
        .values(status=GrantStatus.PENDING_REVOKE, phase=REVOKE, attempts=0)
        .execution_options(**quiet)
    )
    # Granted, or perhaps granted (an attempt that timed out): revoke now.
    await session.execute(
        update(Grant)
        .where(mine, or_(held, pending))
        .values(
            status=GrantStatus.PENDING_REVOKE,
            phase=REVOKE,
            attempts=0,
            next_attempt_at=now,
            claimed_by=None,
            last_error=None,
        )
        .execution_options(**quiet)
    )
    note_queued(session)


async def revoke_request_grants(session: AsyncSession, *, request_id: int, now: datetime) -> None:
    """Cancel after grant: whatever the request's activation was granted is taken back."""
    ids = list(await session.scalars(select(Schedule.id).where(Schedule.request_id == request_id)))
    await revoke_grants(session, schedule_ids=ids, now=now)


async def revoke_removed(session: AsyncSession, schedule_ids: Sequence[int], now: datetime) -> None:
    """The access reviews' removal hook: a review that removes assignments revokes them."""
    await revoke_grants(session, schedule_ids=schedule_ids, now=now)
