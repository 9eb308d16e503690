"""The database fixtures: each test gets its own migrated, empty database on both backends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text

from storage.db import make_engine, make_session_factory
from storage.migrate import revision_status
from storage.models import Principal


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
