"""Signed requests seen before: one atomic insert decides which replica runs a request."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import SeenRequest


async def first_sighting(session: AsyncSession, *, key: str, expires_at: datetime,
                         now: datetime) -> bool:
    """True for the first caller with this key (on any replica), False for every later one
    until the row expires. INSERT … ON CONFLICT is one statement on both databases, so two
    replicas racing on the same request cannot both see "first"; an expired row not purged
    yet is taken over as if it were absent."""
    dialect: Any = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(SeenRequest).values(key=key, expires_at=expires_at)
    stmt = stmt.on_conflict_do_update(
        index_elements=[SeenRequest.key], set_={"expires_at": stmt.excluded.expires_at},
        where=SeenRequest.expires_at < now)
    result: Any = await session.execute(stmt)
    return bool(result.rowcount == 1)


async def purge_seen(session: AsyncSession, *, now: datetime) -> int:
    result: Any = await session.execute(delete(SeenRequest).where(SeenRequest.expires_at < now))
    return int(result.rowcount or 0)
