"""How pim-bot uses SQLite: writers one at a time, readers never waiting, reads on the loop.

Writers: pysqlite opens transactions lazily and as readers; two processes that both read then
write would deadlock on the upgrade. BEGIN IMMEDIATE takes the write lock up front, so SQLite
runs our write transactions one after another and waits (busy timeout) instead.

Readers: a transaction marked READ_ONLY (UnitOfWork.read) never writes, so it begins
deferred. In WAL mode it reads its own snapshot while a writer holds the lock, and neither
waits for the other. Such a read takes microseconds, far less than aiosqlite's hand-off of
every call (cursor, execute, fetch, close, commit) to the connection's thread and back,
which under load waits for the GIL each time; so a read transaction's calls run right on
the event loop. Writes wait on the thread only where they may wait: BEGIN IMMEDIATE (for the
lock) and COMMIT (for the disk). In between, the transaction holds the write lock, so its
statements never wait on anyone and run on the loop too: an ask is a handful of them, and
each hand-off costs more than the statement.

The plain lookups every chat request makes (UnitOfWork.run_read) go one step further: they
run on a synchronous pysqlite engine of their own (`reader`), opened `query_only`, so a
lookup is a few sqlite3 calls with none of the async adapter's hand-offs around each one.
Small writes (the replay guard's) do the same when the write lock is free (`light_writer`),
and otherwise go the usual way.

Durability: every write connection runs WAL with synchronous=NORMAL, SQLite's recommended
setting for WAL: a commit survives the process dying at any point, and the database is never
corrupted, but one made just before the machine loses power may be lost (no fsync per
commit; the WAL is flushed at each checkpoint). Deployments that need every commit on the
disk before it is reported use PostgreSQL.
"""

from __future__ import annotations

import asyncio
import sqlite3
from functools import partial
from typing import Any
from weakref import WeakKeyDictionary

import aiosqlite
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine

# Execution option of a transaction that only reads (see UnitOfWork.read).
READ_ONLY = "pim_read_only"
# Execution option of a read-only engine's connection that runs ONE statement: no BEGIN and
# COMMIT around it, since SQLite runs a lone statement in a snapshot of its own
# (UnitOfWork.run_lookup; each was a tenth of a lookup).
SINGLE = "pim_single"

# Beside each SQLite file engine: its synchronous read-only engine, and its light writer.
_readers: WeakKeyDictionary[Engine, Engine] = WeakKeyDictionary()
_light_writers: WeakKeyDictionary[Engine, Engine] = WeakKeyDictionary()


def reader(engine: AsyncEngine) -> Engine | None:
    """The synchronous read-only engine beside a SQLite file engine (None otherwise)."""
    return _readers.get(engine.sync_engine)


def light_writer(engine: AsyncEngine) -> Engine | None:
    """The synchronous engine for light writes (UnitOfWork.run_light_write) beside a SQLite
    file engine (None otherwise). It never waits for the write lock: held by anyone else,
    BEGIN IMMEDIATE fails at once ("database is locked") and the caller goes the usual way.
    Its commits skip the fsync (synchronous=NORMAL), as every writer's do (see Durability
    above): a crash of the process loses none."""
    return _light_writers.get(engine.sync_engine)


def configure(engine: AsyncEngine) -> None:
    _configure_writer(engine)
    database = engine.url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        # The loop's thread runs these one at a time, without yielding in between.
        _readers[engine.sync_engine] = _side_engine(
            engine,
            begin="BEGIN DEFERRED",  # one snapshot for the whole lookup
            pragmas=("query_only=ON", "busy_timeout=1000"),
        )  # a write here is a bug
        _light_writers[engine.sync_engine] = _side_engine(
            engine,
            begin="BEGIN IMMEDIATE",
            pragmas=("foreign_keys=ON", "busy_timeout=0", "synchronous=NORMAL"),
        )


def _side_engine(engine: AsyncEngine, *, begin: str, pragmas: tuple[str, ...]) -> Engine:
    """A synchronous pysqlite engine on the same file, for calls made on the loop's thread:
    one connection serves them all; overflow only for another thread's loop (tests)."""
    side = create_engine(
        engine.url.set(drivername="sqlite+pysqlite"),
        pool_size=1,
        max_overflow=10,
        connect_args={"check_same_thread": False},
    )

    @event.listens_for(side, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        for pragma in pragmas:
            dbapi_connection.execute(f"PRAGMA {pragma}")

    @event.listens_for(side, "begin")
    def _on_begin(conn: Any) -> None:
        if not conn.get_execution_options().get(SINGLE, False):
            conn.exec_driver_sql(begin)

    @event.listens_for(engine.sync_engine, "engine_disposed")
    def _on_disposed(_engine: Any) -> None:
        side.dispose()

    return side


class _Connection(aiosqlite.Connection):
    """aiosqlite's connection, able to run calls on the event loop instead of its thread."""

    inline = False

    async def _connect(self) -> _Connection:
        # aiosqlite's own, except that a failed open waits for the worker thread to stop.
        # aiosqlite leaves it stopping on its own, and the thread then hands its result to
        # the loop: closed by then (a CLI's one-line answer to a file it cannot open), the
        # thread prints "Event loop is closed" after that line.
        if self._connection is None:
            opened = asyncio.get_running_loop().create_future()
            self._tx.put_nowait((opened, self._connector))
            try:
                self._connection = await opened
            except BaseException:
                stopped = self.stop()
                self._connection = None
                if stopped is not None:
                    await asyncio.shield(stopped)  # the thread's last word to the loop
                raise
        return self

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.inline or getattr(fn, "__name__", "") == "commit":
            return await super()._execute(fn, *args, **kwargs)
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)


def _connect(database: Any, **kwargs: Any) -> _Connection:
    # What aiosqlite.connect() does, with our class; URL parameters arrive as kwargs.
    conn = _Connection(partial(sqlite3.connect, database, **kwargs), iter_chunk_size=64)
    conn._thread.daemon = True  # as SQLAlchemy sets it for connections it opens
    return conn


def _configure_writer(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "do_connect")
    def _on_do_connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        return dialect.dbapi.connect(*cargs, async_creator_fn=_connect, **cparams)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # In WAL mode a commit is then written but not flushed to the disk: it survives the
        # process crashing (kill -9) and the file is never corrupted, but the newest commits
        # can be lost if the machine itself loses power before the next checkpoint. The
        # flush was most of a write's time (an fsync per commit, an ask a few ms).
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        driver: _Connection = conn.connection.driver_connection
        driver.inline = bool(conn.get_execution_options().get(READ_ONLY, False))
        if driver.inline:  # on the loop's thread, so straight to sqlite3: it is half the read
            driver._conn.execute("BEGIN DEFERRED")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            driver.inline = True  # the lock is ours until COMMIT: nothing else waits
