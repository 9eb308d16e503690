"""Engine and session factory for SQLite (default) and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from storage import sqlite

DEFAULT_URL = "sqlite+aiosqlite:///pim-bot.db"


class DatabaseUrlError(ValueError):
    pass


def normalize_url(url: str | None) -> str:
    """Map the URL forms people paste (Heroku's postgres://, plain sqlite://) to async drivers."""
    if not url:
        return DEFAULT_URL
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise DatabaseUrlError(f"DATABASE_URL {url!r} is not a URL (e.g. postgresql://host/db)")
    scheme = scheme.lower()
    if scheme in ("postgres", "postgresql", "postgresql+psycopg2", "postgresql+psycopg"):
        return f"postgresql+asyncpg://{rest}"
    if scheme == "sqlite":
        return f"sqlite+aiosqlite://{rest}"
    if scheme in ("postgresql+asyncpg", "sqlite+aiosqlite"):
        return f"{scheme}://{rest}"
    raise DatabaseUrlError(
        f"DATABASE_URL scheme {scheme!r} is not supported; use sqlite:/// or postgresql://"
    )


def make_engine(url: str | None, **kwargs: Any) -> AsyncEngine:
    async_url = normalize_url(url)
    if make_url(async_url).get_backend_name() == "sqlite":
        # Every transaction's end gives way to other requests (SQLAlchemy closes in a task
        # of its own), so a busy server holds a connection per request in flight. A pool
        # smaller than that opens and closes connections all the time: each one a thread.
        kwargs = {"pool_size": 20, "max_overflow": 30, **kwargs}
        engine = create_async_engine(async_url, connect_args={"timeout": 30}, **kwargs)
        sqlite.configure(engine)
        return engine
    # The same holds here, and a PostgreSQL connection costs milliseconds to open.
    # No ping before each use: it was a round trip more on every lookup (a third of a
    # `/pim roles`). A connection that died with the server fails its one use instead, which
    # answers "busy, nothing changed", and SQLAlchemy then replaces every pooled connection
    # at once; connections older than half an hour are replaced before use, before a
    # proxy or firewall drops them idle. No overflow: SQLAlchemy closes an overflow connection
    # as soon as it is returned, so under load each request in flight past the pool's size
    # opened a connection of its own (a TLS attempt, a login, a server process): the pool
    # keeps all it may open instead, and a request past them waits for one (pool_timeout).
    kwargs = {"pool_size": 30, "max_overflow": 0, "pool_recycle": 1800, **kwargs}
    return create_async_engine(async_url, **kwargs)


def make_session_factory(engine: AsyncEngine, **kwargs: Any) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False, **kwargs)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"
