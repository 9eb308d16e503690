"""One transaction per use case."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storage.audit import AUDIT_KEY_INFO
from storage.audit_hash import AuditKey
from storage.db import make_session_factory


class UnitOfWork:
    """Hands out transactions; commits when the block ends cleanly, rolls back otherwise."""

    def __init__(self, engine: AsyncEngine, *, audit_key: AuditKey | None = None) -> None:
        self.engine = engine
        self.sessions: async_sessionmaker[Any] = make_session_factory(engine)
        # Every session carries the key, so audit events appended in it are keyed.
        self.sessions.configure(info={AUDIT_KEY_INFO: audit_key})

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session, session.begin():
            yield session
