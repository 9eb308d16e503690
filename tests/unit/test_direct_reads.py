"""The chat engines' one-statement reads on PostgreSQL go straight through asyncpg
(storage.direct): what they answer is what SQLAlchemy answers, a database that cannot be
reached is SQLAlchemy's DBAPIError (a "busy" answer in a chat), and disposing of the engine
closes their connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from handlers.activation import ActivationAsk, request_activation
from handlers.identity import email_for
from handlers.queries import my_roles
from storage.db import make_engine
from storage.models import Principal
from storage.uow import UnitOfWork
from tests.pgserver import PostgresServer
from tests.unit.conftest import Engine

pytestmark = pytest.mark.postgres

BOB = "bob@contoso.com"


@pytest.fixture
async def direct(pg_url: str) -> AsyncIterator[UnitOfWork]:
    engine = make_engine(pg_url)
    try:
        yield UnitOfWork(engine, direct_reads={})
    finally:
        await engine.dispose()


@pytest.fixture
def db_url(pg_url: str) -> str:
    return pg_url  # `eng` on PostgreSQL only


async def test_direct_reads_answer_what_sqlalchemy_answers(eng: Engine, direct: UnitOfWork):
    async with eng.uow.transaction() as s:
        await s.execute(update(Principal).where(Principal.email == BOB).values(slack_id="U0BOB"))
    for role, why in (("quick", None), ("global-admin", "rotate keys")):
        await request_activation(
            eng.uow,
            eng.clock,
            actor=BOB,
            ask=ActivationAsk(role=role, duration=timedelta(minutes=30), justification=why),
        )
    seen = await my_roles(direct, actor=BOB)
    assert seen == await my_roles(eng.uow, actor=BOB)
    lines = {line.role.id: line for line in seen.roles}
    assert lines["quick"].active_until == (eng.clock.now() + timedelta(minutes=30)).isoformat()
    assert lines["quick"].member_type == "Activated"
    assert lines["global-admin"].pending_request  # the waiting ask's short id
    assert await email_for(direct, platform="slack", user_id="U0BOB") == BOB
    assert await email_for(direct, platform="slack", user_id="U0NOBODY") is None


async def test_an_unreachable_database_is_a_dbapi_error(pg_server: PostgresServer):
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{_closed_port()}/nothing")
    try:
        with pytest.raises(DBAPIError):
            await email_for(UnitOfWork(engine, direct_reads={}), platform="slack", user_id="U0BOB")
    finally:
        await engine.dispose()


async def test_disposing_of_the_engine_closes_the_direct_connections(
    eng: Engine, pg_url: str
) -> None:
    engine = make_engine(pg_url)
    uow = UnitOfWork(engine, direct_reads={})
    await asyncio.gather(*(my_roles(uow, actor=BOB) for _ in range(5)))
    assert await _connections(eng) >= 1
    await engine.dispose()
    for _ in range(50):  # the server sees each connection close a moment later
        if await _connections(eng) == 0:
            break
        await asyncio.sleep(0.1)
    assert await _connections(eng) == 0


def test_a_direct_read_refuses_an_in_list() -> None:
    from sqlalchemy.dialects.postgresql import asyncpg as dialect

    from storage.direct import _plan

    with pytest.raises(ValueError, match="IN list"):
        _plan(select(Principal.id).where(Principal.email.in_(["a", "b"])), dialect.dialect())


async def _connections(eng: Engine) -> int:
    """Other connections to this test's database than the one asking (and the engine's own)."""
    async with eng.uow.transaction() as s:
        return int(
            await s.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()"
                )
            )
            or 0
        )


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
