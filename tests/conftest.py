"""Shared fixtures: migrated databases on SQLite and on a throwaway PostgreSQL server.

`db_url` runs a test twice, on SQLite and on PostgreSQL (marked `postgres`; deselect with
`-m "not postgres"`). Without PostgreSQL server binaries the PostgreSQL half is skipped,
unless PIM_REQUIRE_POSTGRES=1 (CI), where it fails instead.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from storage.db import make_engine
from storage.migrate import upgrade

try:
    from tests.pgserver import NoPostgres, PostgresServer
except ImportError:  # run as plain `pytest`, without the repo root on sys.path
    from pgserver import NoPostgres, PostgresServer  # type: ignore[no-redef]

# Shared helpers assert too; rewrite them like test modules so a failure shows its values.
pytest.register_assert_rewrite(
    "tests.unit.helpers", "tests.cards.helpers", "tests.integration.helpers"
)

TEMPLATE_DB = "pim_template"


def run_async(fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a coroutine to completion on its own loop in a worker thread, so it never clashes
    with the event loop pytest-asyncio has (or will have) on the main thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, fn()).result()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The minutes-long tests go first, so under pytest-xdist one worker runs them while the
    # others take the rest, instead of them starting last and stretching the run.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def migrate(url: str) -> None:
    async def go() -> None:
        engine = make_engine(url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    run_async(go)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer()
    except NoPostgres as exc:
        missing = str(exc)
    else:
        with server:
            yield server
        return
    if os.environ.get("PIM_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PIM_REQUIRE_POSTGRES=1 but {missing}", pytrace=False)
    pytest.skip("no PostgreSQL server binaries")


@pytest.fixture(scope="session")
def pg_template(pg_server: PostgresServer) -> str:
    """A migrated database that per-test databases are cloned from; returns its name."""
    migrate(pg_server.create_database(TEMPLATE_DB))
    return TEMPLATE_DB


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path}/pim.db"
    migrate(url)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a freshly migrated, empty database of its own for this test."""
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_url")
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    template: str = request.getfixturevalue("pg_template")
    name = f"test_{uuid.uuid4().hex}"
    url = server.create_database(name, template=template)
    try:
        yield url
    finally:
        server.drop_database(name)  # WITH (FORCE): a leaked connection cannot block the drop


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A freshly migrated PostgreSQL database, for a test that needs both databases at once."""
    server: PostgresServer = request.getfixturevalue("pg_server")
    name = f"test_{uuid.uuid4().hex}"
    url = server.create_database(name, template=request.getfixturevalue("pg_template"))
    try:
        yield url
    finally:
        server.drop_database(name)
