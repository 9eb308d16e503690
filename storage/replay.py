"""Signed requests seen before: one atomic insert decides which replica runs a request."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import SeenRequest


async def first_sightings(session: AsyncSession, *, keys: Mapping[str, datetime],
                          now: datetime) -> set[str]:
    """The keys (each with its expiry) nobody had inserted before, on any replica; a key
    already there counts again only once its row has expired. INSERT … ON CONFLICT … RETURNING
    is one statement on both databases, so two replicas racing on one key cannot both get it,
    and a batch of keys costs one statement and one commit."""
    if not keys:
        return set()
    dialect: Any = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(SeenRequest).values(
        [{"key": key, "expires_at": at} for key, at in keys.items()])
    stmt = stmt.on_conflict_do_update(
        index_elements=[SeenRequest.key], set_={"expires_at": stmt.excluded.expires_at},
        where=SeenRequest.expires_at < now).returning(SeenRequest.key)
    return set((await session.scalars(stmt)).all())


async def first_sighting(session: AsyncSession, *, key: str, expires_at: datetime,
                         now: datetime) -> bool:
    return key in await first_sightings(session, keys={key: expires_at}, now=now)


async def purge_seen(session: AsyncSession, *, now: datetime) -> int:
    result: Any = await session.execute(delete(SeenRequest).where(SeenRequest.expires_at < now))
    return int(result.rowcount or 0)
