"""The hash-chained audit log: append, verify, read."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditEvent

GENESIS = "0" * 64
# Any constant works; it only has to be the same in every process sharing the database.
_AUDIT_LOCK_KEY = 7_244_613


def event_hash(
    *, id: int, at: datetime, actor: str, action: str, target: str,
    details: dict[str, Any], prev_hash: str,
) -> str:
    canonical = json.dumps(
        [id, at.isoformat(), actor, action, target, details, prev_hash],
        sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class NewEvent:
    """One event to append; `details` must be JSON-serialisable (other values become str)."""

    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any] = field(default_factory=dict)


async def append_event(
    session: AsyncSession, *, at: datetime, actor: str, action: str, target: str,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add one event at the head of the chain, inside the caller's transaction."""
    item = NewEvent(at=at, actor=actor, action=action, target=target, details=details or {})
    return (await append_events(session, [item]))[0]


async def append_events(session: AsyncSession, items: Sequence[NewEvent]) -> list[AuditEvent]:
    """Add events at the head of the chain in the order given, inside the caller's
    transaction: one head lookup (and one lock) however many there are."""
    if not items:
        return []
    if session.get_bind().dialect.name == "postgresql":
        # Serialise appenders until commit so two transactions never chain onto the same head.
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _AUDIT_LOCK_KEY})
    head = (
        await session.execute(
            select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
        )
    ).first()
    next_id, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
    rows = []
    for item in items:
        # JSON round trip now, so the hash is computed over exactly what the database returns.
        clean = json.loads(json.dumps(item.details, default=str))
        row = AuditEvent(
            id=next_id, at=item.at, actor=item.actor, action=item.action, target=item.target,
            details=clean, prev_hash=prev,
        )
        row.hash = event_hash(
            id=next_id, at=item.at, actor=item.actor, action=item.action, target=item.target,
            details=clean, prev_hash=prev,
        )
        rows.append(row)
        next_id, prev = next_id + 1, row.hash
    session.add_all(rows)
    await session.flush()
    return rows


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int
    broken_id: int | None = None
    reason: str = ""


async def verify_chain(session: AsyncSession) -> VerifyResult:
    prev_hash, prev_id, checked = GENESIS, 0, 0
    async for row in iter_events(session):
        if row.id != prev_id + 1:
            return VerifyResult(False, checked, row.id, f"row {prev_id + 1} is missing")
        if row.prev_hash != prev_hash:
            return VerifyResult(
                False, checked, row.id, "previous-hash link broken (a row was removed or reordered)"
            )
        expected = event_hash(
            id=row.id, at=row.at, actor=row.actor, action=row.action, target=row.target,
            details=row.details, prev_hash=row.prev_hash,
        )
        if row.hash != expected:
            return VerifyResult(False, checked, row.id, "contents do not match the hash (edited)")
        prev_hash, prev_id, checked = row.hash, row.id, checked + 1
    return VerifyResult(True, checked)


async def iter_events(
    session: AsyncSession, *, since: datetime | None = None, batch: int = 1000
) -> AsyncIterator[AuditEvent]:
    last_id = 0
    while True:
        stmt = select(AuditEvent).where(AuditEvent.id > last_id)
        if since is not None:
            stmt = stmt.where(AuditEvent.at >= since)
        rows = (await session.scalars(stmt.order_by(AuditEvent.id).limit(batch))).all()
        if not rows:
            return
        for row in rows:
            yield row
        last_id = rows[-1].id


async def count_events(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count(AuditEvent.id))) or 0)
