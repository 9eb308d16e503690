"""Shared fixtures: migrated databases on SQLite and on a throwaway PostgreSQL server.

`db_url` runs a test twice, on SQLite and on PostgreSQL (marked `postgres`; deselect with
`-m "not postgres"`). Without PostgreSQL server binaries the PostgreSQL half is skipped,
unless PIM_REQUIRE_POSTGRES=1 (CI), where it fails instead.

The migrations run once per session (per xdist worker) on each backend, into a template:
a test's SQLite file is a copy of the migrated one, and its PostgreSQL database comes from
a pool of clones of the migrated one (tests/pgserver.py DatabasePool). `empty_db_url` is an
unmigrated database, for the tests of the migrations themselves.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from storage.db import make_engine
from storage.migrate import upgrade

try:
    from tests.pgserver import DatabasePool, NoPostgres, PostgresServer
except ImportError:  # run as plain `pytest`, without the repo root on sys.path
    from pgserver import DatabasePool, NoPostgres, PostgresServer  # type: ignore[no-redef]

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


@pytest.fixture(scope="session")
def pg_pool(pg_server: PostgresServer, pg_template: str) -> Iterator[DatabasePool]:
    pool = DatabasePool(pg_server, pg_template)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that per-test files are copied from."""
    path = tmp_path_factory.mktemp("sqlite-template") / "pim.db"
    migrate(f"sqlite+aiosqlite:///{path}")
    # The copy must be the whole database: fold the write-ahead log into the file.
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    wal = path.with_name(path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0, "template WAL not checkpointed"
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "pim.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


def _pooled(request: pytest.FixtureRequest) -> Iterator[str]:
    server: PostgresServer = request.getfixturevalue("pg_server")
    pool: DatabasePool = request.getfixturevalue("pg_pool")
    name = pool.acquire()
    try:
        yield server.url(name)
    finally:
        pool.release(name)  # emptied and renamed for the next test, or dropped


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a freshly migrated, empty database of its own for this test."""
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_url")
        return
    yield from _pooled(request)


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A freshly migrated PostgreSQL database, for a test that needs both databases at once."""
    yield from _pooled(request)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a new database with no tables at all: the migrations' own tests start here."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/pim.db"
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    name = f"empty_{uuid.uuid4().hex}"
    url = server.create_database(name)
    try:
        yield url
    finally:
        server.drop_database(name)
