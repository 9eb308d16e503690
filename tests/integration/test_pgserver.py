"""The database fixtures: each test gets its own migrated, empty database on both backends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, inspect, select, text

from storage.db import make_engine, make_session_factory
from storage.migrate import revision_status
from storage.models import Principal
from tests.conftest import run_async


def backend(request: pytest.FixtureRequest) -> str:
    return str(request.node.callspec.params["db_url"])


async def test_database_is_migrated_and_empty(db_url: str, request: pytest.FixtureRequest) -> None:
    engine = make_engine(db_url)
    try:
        assert engine.dialect.name == backend(request)
        async with engine.connect() as conn:
            assert (await conn.execute(text("select count(*) from principals"))).scalar() == 0
        current, head = await revision_status(engine)
        assert current == head is not None
    finally:
        await engine.dispose()


@pytest.mark.parametrize("run", [1, 2])
async def test_each_test_gets_its_own_database(db_url: str, run: int) -> None:
    # Both runs insert the same unique email: a database shared between tests (or a template
    # that was written to) would show the other run's row or fail on the unique constraint.
    engine = make_engine(db_url)
    try:
        sessions = make_session_factory(engine)
        async with sessions.begin() as session:
            assert await session.scalar(select(func.count()).select_from(Principal)) == 0
            session.add(
                Principal(
                    email="same@example.com",
                    display_name=f"Run {run}",
                    created_at=datetime.now(UTC),
                )
            )
        async with sessions() as session:
            names = (await session.scalars(select(Principal.display_name))).all()
        assert names == [f"Run {run}"]
    finally:
        await engine.dispose()


def test_sync_test_can_use_db_url(db_url: str) -> None:
    # The fixture does its async work on a private loop, so plain (sync) tests work too.
    assert db_url.startswith(("sqlite+aiosqlite:///", "postgresql://"))


def test_empty_db_url_has_no_tables(empty_db_url: str) -> None:
    async def tables() -> list[str]:
        engine = make_engine(empty_db_url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(lambda c: inspect(c).get_table_names())
        finally:
            await engine.dispose()

    assert run_async(tables) == []


@pytest.mark.postgres
def test_pool_hands_out_a_database_emptied_renamed_and_restarted(pg_pool, pg_server) -> None:
    # Two tests in a row on one worker: the second gets the first's database back, empty,
    # with its ids starting over, and the first's URL no longer reaches it.
    async def add(url: str) -> int:
        engine = make_engine(url)
        try:
            async with make_session_factory(engine).begin() as session:
                person = Principal(
                    email="same@example.com", display_name="P", created_at=datetime.now(UTC)
                )
                session.add(person)
                await session.flush()
                return int(person.id)
        finally:
            await engine.dispose()

    async def count(url: str) -> int:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                return int((await conn.execute(select(func.count(Principal.id)))).scalar_one())
        finally:
            await engine.dispose()

    first = pg_pool.acquire()
    assert run_async(lambda: add(pg_server.url(first))) == 1
    pg_pool.release(first)
    second = pg_pool.acquire()
    try:
        assert second != first
        assert run_async(lambda: count(pg_server.url(second))) == 0
        assert run_async(lambda: add(pg_server.url(second))) == 1
        with pytest.raises(Exception, match="does not exist"):
            run_async(lambda: count(pg_server.url(first)))
    finally:
        pg_pool.release(second)
