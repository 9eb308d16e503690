"""Engine and session factory for SQLite (default) and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

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
        engine = create_async_engine(async_url, connect_args={"timeout": 30}, **kwargs)
        _serialise_sqlite_writers(engine)
        return engine
    return create_async_engine(async_url, pool_pre_ping=True, **kwargs)


def _serialise_sqlite_writers(engine: AsyncEngine) -> None:
    # pysqlite opens transactions lazily and as readers; two processes that both read then
    # write would deadlock on the upgrade. BEGIN IMMEDIATE takes the write lock up front, so
    # SQLite runs our transactions one after another and waits (busy timeout) instead.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"
