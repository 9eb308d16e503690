"""Claiming due grant rows so that one worker at a time calls a provider for each.

The same pattern as the outbox (storage.claims): PostgreSQL takes the rows with
SELECT ... FOR UPDATE SKIP LOCKED; SQLite holds its write lock for the transaction and the
guarded UPDATE (rowcount checked) is the belt to that brace. A claim is a lease: the row's
next_attempt_at moves to the lease's end, so a worker that dies mid-call leaves a row that
falls due again, and the next worker calls the (idempotent) provider once more.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Grant
from vocab.states import GrantStatus

DUE = (
    GrantStatus.PENDING_PROVISIONING,
    GrantStatus.PENDING_EXTENSION,
    GrantStatus.PENDING_REVOKE,
)


async def claim_grants(
    session: AsyncSession,
    *,
    now: datetime,
    worker: str,
    lease_until: datetime,
    limit: int,
    kinds: list[str],
) -> list[Grant]:
    """Claim up to `limit` due rows of these target kinds, oldest due first."""
    due = (
        select(Grant)
        .where(Grant.status.in_(DUE), Grant.next_attempt_at <= now, Grant.kind.in_(kinds))
        .order_by(Grant.next_attempt_at, Grant.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    rows = list((await session.scalars(due)).all())
    if not rows:
        return []
    ids = [g.id for g in rows]
    result = await session.execute(
        update(Grant)
        .where(Grant.id.in_(ids), Grant.status.in_(DUE), Grant.next_attempt_at <= now)
        .values(
            claimed_by=worker,
            claimed_at=now,
            next_attempt_at=lease_until,
            # from here on the call may reach the provider: a revoke is then needed
            attempted_at=func.coalesce(Grant.attempted_at, now),
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != len(rows):  # type: ignore[attr-defined]
        ids = list(
            await session.scalars(
                select(Grant.id).where(
                    Grant.id.in_(ids),
                    Grant.claimed_by == worker,
                    Grant.next_attempt_at == lease_until,
                )
            )
        )
    claimed = [g for g in rows if g.id in set(ids)]
    for g in claimed:
        g.claimed_by, g.next_attempt_at = worker, lease_until
    return claimed


async def settle(
    session: AsyncSession,
    *,
    grant_id: int,
    worker: str,
    status: GrantStatus,
    values: dict[str, Any],
) -> bool:
    """Write a call's outcome, only if the row is still ours and still in `status`: a revoke
    that arrived while the grant call was in flight has moved it on."""
    result = await session.execute(
        update(Grant)
        .where(Grant.id == grant_id, Grant.claimed_by == worker, Grant.status == status)
        .values(claimed_by=None, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def release(session: AsyncSession, *, grant_id: int, worker: str, now: datetime) -> None:
    """Hand back a row whose status changed under us: its revoke (or extension) is due now."""
    await session.execute(
        update(Grant)
        .where(Grant.id == grant_id, Grant.claimed_by == worker)
        .values(claimed_by=None, next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )


async def next_grant_due(session: AsyncSession, *, kinds: list[str]) -> datetime | None:
    return await session.scalar(
        select(Grant.next_attempt_at)
        .where(Grant.status.in_(DUE), Grant.kind.in_(kinds))
        .order_by(Grant.next_attempt_at)
        .limit(1)
    )


async def grants_failed(session: AsyncSession) -> int:
    """Grants stuck in Failed: for /healthz and the digest."""
    return (
        await session.scalar(select(func.count(Grant.id)).where(Grant.status == GrantStatus.FAILED))
        or 0
    )
