"""An engine on a real database with a small cast: Alice (admin), Bob, Carol, Dave."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from handlers.assignment import grant_schedule
from handlers.clock import FixedClock
from handlers.settings import RoleSettings
from storage.audit_hash import AuditKey
from storage.db import make_engine
from storage.models import AuditEvent, OutboxMessage, Principal, Role, ScheduleRequest
from storage.uow import UnitOfWork

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
AUDIT_SECRET = "correct horse battery staple 42"  # for `keyed`: a PIM_AUDIT_KEY

PEOPLE = [
    ("alice@contoso.com", "Alice Admin", True),
    ("bob@contoso.com", "Bob Builder", False),
    ("carol@contoso.com", "Carol Chen", False),
    ("dave@contoso.com", "Dave Duty", False),
]
ROLES = {
    "global-admin": (
        "Global Administrator",
        {"require_approval": True, "approvers": ["carol@contoso.com"]},
    ),
    "helpdesk-admin": ("Helpdesk Administrator", {"max_duration": "4h"}),
    "quick": (
        "Quick Role",
        {
            "min_duration": "1s",
            "max_duration": "1h",
            "require_justification": False,
            "expiry_warning": "10s",
        },
    ),
    "billing-admin": ("Billing Administrator", {"require_approval": True, "require_ticket": True}),
}


@dataclass
class Engine:
    uow: UnitOfWork
    clock: FixedClock

    async def count(self, model: type) -> int:
        async with self.uow.transaction() as s:
            return int(await s.scalar(select(func.count()).select_from(model)) or 0)

    async def snapshot(self) -> tuple[int, int, int]:
        return (
            await self.count(ScheduleRequest),
            await self.count(AuditEvent),
            await self.count(OutboxMessage),
        )

    async def outbox(self, kind: str | None = None) -> list[tuple[str | None, str, dict]]:
        """(recipient email, kind, payload) of every message written so far."""
        async with self.uow.transaction() as s:
            stmt = select(OutboxMessage).order_by(OutboxMessage.id)
            if kind:
                stmt = stmt.where(OutboxMessage.kind == kind)
            rows = (await s.scalars(stmt)).all()
            out = []
            for m in rows:
                email = None
                if m.recipient_id:
                    email = (await s.get(Principal, m.recipient_id)).email
                out.append((email, m.kind, m.payload))
            return out


async def seed(uow: UnitOfWork, clock: FixedClock) -> None:
    now = clock.now()
    async with uow.transaction() as s:
        people = {}
        for email, name, admin in PEOPLE:
            p = Principal(email=email, display_name=name, admin=admin, created_at=now)
            s.add(p)
            people[email] = p
        roles = {}
        for rid, (name, settings) in ROLES.items():
            r = Role(
                id=rid,
                display_name=name,
                description="",
                settings=RoleSettings.from_mapping(settings).to_mapping(),
                created_at=now,
            )
            s.add(r)
            roles[rid] = r
        await s.flush()
        for email, rid in [
            ("bob@contoso.com", "global-admin"),
            ("bob@contoso.com", "helpdesk-admin"),
            ("bob@contoso.com", "quick"),
            ("dave@contoso.com", "billing-admin"),
            ("carol@contoso.com", "global-admin"),
        ]:
            await grant_schedule(
                s,
                actor="seed",
                principal=people[email],
                role=roles[rid],
                kind="eligible",
                end=None,
                now=now,
            )


@pytest.fixture
async def eng(db_url: str) -> AsyncIterator[Engine]:
    engine = make_engine(db_url)
    clock = FixedClock(T0)
    uow = UnitOfWork(engine)
    await seed(uow, clock)
    try:
        yield Engine(uow=uow, clock=clock)
    finally:
        await engine.dispose()


@pytest.fixture
async def keyed(db_url: str) -> AsyncIterator[Engine]:
    """Like eng, with the audit chain keyed by AUDIT_SECRET from the first event."""
    engine = make_engine(db_url)
    clock = FixedClock(T0)
    uow = UnitOfWork(engine, audit_key=AuditKey.from_text(AUDIT_SECRET))
    await seed(uow, clock)
    try:
        yield Engine(uow=uow, clock=clock)
    finally:
        await engine.dispose()


def _path(url: str) -> Path:
    return Path(url.split(":///", 1)[1])


@contextmanager
def write_lock(url: str) -> Iterator[None]:
    """Another connection holding SQLite's write lock (BEGIN IMMEDIATE) meanwhile."""
    conn = sqlite3.connect(_path(url), timeout=0, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        other = sqlite3.connect(_path(url), timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")  # the lock is really held
        other.close()
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()
