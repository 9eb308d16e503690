"""One transaction per use case."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from sqlalchemy.util import greenlet_spawn

from storage.audit import AUDIT_KEY_INFO, COMMITTED_ACTIONS
from storage.audit_hash import AuditKey
from storage.audit_head import HEAD_CACHE_INFO, TX_HEAD, HeadCache
from storage.db import make_session_factory
from storage.direct import DirectReader
from storage.models import OutboxMessage, Timer
from storage.sqlite import READ_ONLY, SINGLE, light_writer, reader

_QUEUED = "pim_queued"
T = TypeVar("T")


class ReadOnlyViolation(RuntimeError):
    """Something tried to write inside UnitOfWork.read(): a bug, never a user's doing."""


class UnitOfWork:
    """Hands out transactions; commits when the block ends cleanly, rolls back otherwise.

    `queued` counts the committed transactions that left work for the sweeper (outbox rows,
    timers, grants), so a poke after a plain read costs nothing (bot.scheduler). A unit of
    work made `queued_with` another adds to that one's count: the chat engines' commits
    must wake the workers, which run on the main one. `on_commit`, when
    set, is called with the audit actions of each committed transaction (bot.metrics counts
    them): a plain callable, so storage knows nothing of who listens."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        audit_key: AuditKey | None = None,
        queued_with: UnitOfWork | None = None,
        direct_reads: Mapping[str, Any] | None = None,
    ) -> None:
        """`direct_reads`: on PostgreSQL, lookup_rows runs on a pool of asyncpg connections
        of its own (storage.direct) besides the engine's, opened with these arguments of
        asyncpg's connect (give them the engine's waits); for the chat engines, whose every
        request is such lookups. None: lookups go through the engine."""
        self.engine = engine
        self.sessions: async_sessionmaker[Any] = make_session_factory(
            engine, sync_session_class=_Session
        )
        # Every session carries the key, so audit events appended in it are keyed, and the
        # chain's head as last committed in this process (shared with `queued_with`, on the
        # same database), so an append need not read it first.
        self.audit_head: HeadCache = (
            queued_with.audit_head if queued_with is not None else HeadCache()
        )
        self.sessions.configure(info={AUDIT_KEY_INFO: audit_key, HEAD_CACHE_INFO: self.audit_head})
        # PostgreSQL begins these READ ONLY (asyncpg says so in its BEGIN); SQLite begins
        # them deferred rather than taking the write lock (storage.sqlite).
        read_options: dict[str, Any] = {READ_ONLY: True}
        if self.dialect == "postgresql":
            read_options["postgresql_readonly"] = True
        self._read_engine = engine.execution_options(**read_options)
        self.readers: async_sessionmaker[Any] = make_session_factory(
            self._read_engine,
            sync_session_class=_Session,
            info={READ_ONLY: True, AUDIT_KEY_INFO: audit_key},
        )
        self._queued: list[int] = queued_with._queued if queued_with is not None else [0]
        self._reader, self._light_writer = reader(engine), light_writer(engine)
        self._lone_reader = (
            self._reader.execution_options(**{SINGLE: True}) if self._reader is not None else None
        )
        # On PostgreSQL a single statement is a transaction and a snapshot of its own: sent
        # without BEGIN and COMMIT around it, it costs one round trip instead of three.
        self._single = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.dialect == "postgresql"
            else None
        )
        self._direct = (
            DirectReader(engine.url, engine.dialect, connect=direct_reads)
            if direct_reads is not None and self.dialect == "postgresql"
            else None
        )
        if self._direct is not None:
            direct = self._direct
            # Disposing of the engine (Runtime.close, every test) closes these connections too.
            event.listen(engine.sync_engine, "engine_disposed", lambda _e: direct.terminate())
        self.on_commit: Callable[[list[str]], None] | None = None

    @property
    def queued(self) -> int:
        return self._queued[0]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            async with session.begin():
                yield session
            if session.info.get(_QUEUED):
                self._queued[0] += 1
            head = session.info.pop(TX_HEAD, None)
            if head is not None:
                self.audit_head.advance(head)
            actions = session.info.pop(COMMITTED_ACTIONS, None)
            if actions and self.on_commit is not None:
                self.on_commit(actions)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A transaction that only reads: one consistent snapshot, and on SQLite no write
        lock, so a read never waits for a writer nor holds one up."""
        async with self.readers() as session, session.begin():
            yield session

    async def run_read(self, fn: Callable[[Connection], T]) -> T:
        """Run fn(connection) in a read() transaction, without the ORM, in one go: SQLAlchemy
        runs the plain (sync) Connection API on the async driver, as AsyncConnection.run_sync
        does. A third of a session's cost, for the lookups every chat request makes. On a
        SQLite file it runs right here on SQLite's synchronous read-only engine
        (storage.sqlite.reader): a WAL read never waits for a writer, so it never blocks."""
        if self._reader is not None:
            with self._reader.connect() as conn, conn.begin():
                return fn(conn)
        return await greenlet_spawn(self._run_read, fn)

    def _run_read(self, fn: Callable[[Connection], T]) -> T:
        with self._read_engine.sync_engine.connect() as conn, conn.begin():
            return fn(conn)

    async def run_lookup(self, fn: Callable[[Connection], T]) -> T:
        """run_read for an fn that runs ONE statement (it reads one snapshot whatever the
        database): without BEGIN and COMMIT, on PostgreSQL one round trip."""
        if self._lone_reader is not None:
            with self._lone_reader.connect() as conn:
                return fn(conn)
        if self._single is not None:
            return await greenlet_spawn(self._run_single, fn)
        return await self.run_read(fn)

    async def lookup_rows(self, statement: Select[Any], params: Mapping[str, Any]) -> Sequence[Any]:
        """The rows of ONE SELECT of plain columns, on a snapshot of its own, with attribute
        access by column key: on PostgreSQL straight through asyncpg (storage.direct), a
        third of the CPU; elsewhere as run_lookup."""
        if self._direct is not None:
            return await self._direct.rows(statement, params)
        return await self.run_lookup(lambda conn: conn.execute(statement, params).all())

    async def run_light_write(self, fn: Callable[[Connection], T]) -> T:
        """Run fn(connection), without the ORM, for small writes whose commit need not wait
        for the disk: one that protects later work, which commits durably after it (the
        replay guard's seen signatures). fn writes no audit event and no outbox row, and
        each of its statements must stand on its own: on PostgreSQL each is sent alone
        and is its own transaction (one round trip each). On a SQLite file whose write
        lock is free it runs right here (storage.sqlite.light_writer); otherwise in a
        transaction, as any write does."""
        if self._single is not None:
            return await greenlet_spawn(self._run_single, fn)
        done, value = self.light_write_now(fn)
        if done:
            return value  # type: ignore[return-value]
        return await greenlet_spawn(self._run_write, fn)

    def _run_single(self, fn: Callable[[Connection], T]) -> T:
        assert self._single is not None
        with self._single.sync_engine.connect() as conn:
            return fn(conn)

    def light_write_now(self, fn: Callable[[Connection], T]) -> tuple[bool, T | None]:
        """run_light_write without yielding to the loop: (True, what fn returned), or
        (False, None) when it cannot be done right now (another writer holds SQLite's lock,
        or the database is PostgreSQL, where every statement is a round trip)."""
        if self._light_writer is None:
            return False, None
        try:
            with self._light_writer.begin() as conn:
                return True, fn(conn)
        except OperationalError as err:
            if "locked" in str(err.orig):  # "database is locked": a writer is busy
                return False, None
            raise

    def _run_write(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.sync_engine.begin() as conn:
            return fn(conn)


def note_queued(session: AsyncSession) -> None:
    """Say that this transaction left work for the sweeper: for rows written with a plain
    INSERT, which no flush sees."""
    session.info[_QUEUED] = True


class _Session(Session):
    """Our sessions: they refuse writes in read() and note work queued for the sweeper."""


@event.listens_for(_Session, "before_flush")
def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    if session.info.get(READ_ONLY) and (session.new or session.dirty or session.deleted):
        raise ReadOnlyViolation("a read-only unit of work tried to write")
    if any(isinstance(obj, OutboxMessage | Timer) for obj in session.new):
        session.info[_QUEUED] = True
