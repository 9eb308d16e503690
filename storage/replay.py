"""Signed requests seen before: one atomic insert decides which replica runs a request."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Delete, Insert, bindparam, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import SeenRequest


def _sightings(dialect_name: str, keys: Mapping[str, datetime], now: datetime) -> Insert:
    """INSERT … ON CONFLICT … RETURNING is one statement on both databases, so two replicas
    racing on one key cannot both get it, and a batch of keys costs one statement."""
    dialect: Any = postgresql if dialect_name == "postgresql" else sqlite
    stmt = dialect.insert(SeenRequest).values(
        [{"key": key, "expires_at": at} for key, at in keys.items()]
    )
    return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=[SeenRequest.key],
        set_={"expires_at": stmt.excluded.expires_at},
        where=SeenRequest.expires_at < now,
    ).returning(SeenRequest.key)


def _one_sighting(dialect: Any) -> Insert:
    stmt = dialect.insert(SeenRequest).values(
        key=bindparam("key"), expires_at=bindparam("expires_at")
    )
    return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=[SeenRequest.key],
        set_={"expires_at": stmt.excluded.expires_at},
        where=SeenRequest.expires_at < bindparam("now"),
    ).returning(SeenRequest.key)


# Built once, so compiled once (building and compiling the statement cost ten times what
# running it does on SQLite). A batch of keys runs it with one set of parameters per key,
# which SQLAlchemy sends as ONE multi-row INSERT (its "insertmanyvalues"): one round trip,
# with no statement built per batch size.
_ONE = {"postgresql": _one_sighting(postgresql), "sqlite": _one_sighting(sqlite)}


def _expired(now: datetime) -> Delete:
    return delete(SeenRequest).where(SeenRequest.expires_at < now)


async def first_sightings(
    session: AsyncSession, *, keys: Mapping[str, datetime], now: datetime
) -> set[str]:
    """The keys (each with its expiry) nobody had inserted before, on any replica; a key
    already there counts again only once its row has expired."""
    if not keys:
        return set()
    stmt = _sightings(session.get_bind().dialect.name, keys, now)
    return set((await session.scalars(stmt)).all())


def first_sightings_now(
    conn: Connection, *, keys: Mapping[str, datetime], now: datetime
) -> set[str]:
    """first_sightings on a plain connection (UnitOfWork.run_light_write)."""
    if not keys:
        return set()
    params = [{"key": key, "expires_at": at, "now": now} for key, at in keys.items()]
    return set(conn.scalars(_ONE[conn.dialect.name], params).all())


async def first_sighting(
    session: AsyncSession, *, key: str, expires_at: datetime, now: datetime
) -> bool:
    return key in await first_sightings(session, keys={key: expires_at}, now=now)


async def purge_seen(session: AsyncSession, *, now: datetime) -> int:
    result: Any = await session.execute(_expired(now))
    return int(result.rowcount or 0)


def purge_seen_now(conn: Connection, *, now: datetime) -> int:
    return int(conn.execute(_expired(now)).rowcount or 0)
