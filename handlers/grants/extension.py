"""Moving the end of access already granted, in the transaction that moves the activation's
end (an extension, a renewal, an admin's extend-assignment).

Entra and Azure were told the old end as the assignment's expiration and would end the access
there; a webhook's receiver was told it too. So each grant row of the schedule that reached
(or may have reached) its target is queued to carry the new end:

    Provisioned -> PendingExtension -> Provisioned (with the new end)
                          |-> PendingRevoke (the access ended meanwhile: the revoke wins)
                          +-> Failed (phase "extend")

A grant never tried yet needs nothing: its call reads the schedule's end when it is claimed.
A call in flight with the old end keeps its lease; recording its outcome finds the row moved
on and hands it back, due now (storage.grant_claims.release). Whatever slips between the two
(a claim that read the old end just before the extension committed) is caught when the
outcome is recorded: a call that carried an end other than the schedule's is followed by an
extension (handlers.grants.outcomes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.grants.state import EXTEND
from handlers.grants.targets import PLACE, from_json
from handlers.records import SYSTEM_ACTOR
from storage.audit import NewEvent
from storage.models import Grant
from storage.uow import note_queued
from vocab.states import GrantStatus

# Targets that hold no end of their own: membership of a Slack user group just continues.
ENDLESS = frozenset({"slack_usergroup"})


@dataclass(frozen=True, slots=True)
class Extending:
    """What an end move did to the grants: rows queued, and the lines the holder's card
    shows ("Entra: moving the end…")."""

    count: int
    lines: tuple[str, ...]

    def event(self, *, at: datetime, target: str, details: dict[str, object]) -> list[NewEvent]:
        """The audit event of the queued extensions (none when nothing was queued)."""
        if not self.count:
            return []
        return [
            NewEvent(
                at=at,
                actor=SYSTEM_ACTOR,
                action="grant.extending",
                target=target,
                details={**details, "grants": self.count},
            )
        ]


async def extend_grants(session: AsyncSession, *, schedule_id: int, now: datetime) -> Extending:
    """Queue every grant of this schedule that holds (or may hold) access to carry the
    schedule's new end. Two UPDATEs and one SELECT, however many targets."""
    mine = Grant.schedule_id == schedule_id
    in_flight = and_(Grant.claimed_by.is_not(None), Grant.next_attempt_at > now)
    movable = or_(
        Grant.status.in_([GrantStatus.PROVISIONED, GrantStatus.PENDING_EXTENSION]),
        # An attempt may have reached the target with the old end: "already exists" on its
        # retry would hide that end, so the retry becomes an extension.
        and_(Grant.status == GrantStatus.PENDING_PROVISIONING, Grant.attempted_at.is_not(None)),
        # An earlier extension gave up; the access is there with an older end still.
        and_(Grant.status == GrantStatus.FAILED, Grant.phase == EXTEND),
    )
    queued = dict(status=GrantStatus.PENDING_EXTENSION, phase=EXTEND, attempts=0, last_error=None)
    quiet = dict(synchronize_session=False)
    due = await session.execute(
        update(Grant)
        .where(mine, movable, ~in_flight)
        .values(**queued, next_attempt_at=now, claimed_by=None)
        .execution_options(**quiet)
    )
    # A call in flight keeps its lease: the extension goes out after it, never beside it.
    waiting = await session.execute(
        update(Grant).where(mine, movable, in_flight).values(**queued).execution_options(**quiet)
    )
    count = due.rowcount + waiting.rowcount  # type: ignore[attr-defined]
    if count:
        note_queued(session)
    return Extending(count=count, lines=await _lines(session, schedule_id=schedule_id))


async def _lines(session: AsyncSession, *, schedule_id: int) -> tuple[str, ...]:
    rows = await session.execute(
        select(Grant.target, Grant.status)
        .where(
            Grant.schedule_id == schedule_id,
            Grant.status.in_([GrantStatus.PENDING_PROVISIONING, GrantStatus.PENDING_EXTENSION]),
        )
        .order_by(Grant.id)
    )
    lines = []
    for raw, status in rows:
        target = from_json(raw)
        if status == GrantStatus.PENDING_PROVISIONING:
            lines.append(f"{PLACE[target.kind]}: provisioning…")
        elif target.kind not in ENDLESS:
            lines.append(f"{PLACE[target.kind]}: moving the end…")
    return tuple(lines)
