"""A throwaway PostgreSQL server for tests: initdb into a temp dir, start, stop, remove.

No pytest here; tests/conftest.py wraps it in fixtures. The server is tuned for speed, not
durability (fsync off), listens on 127.0.0.1 on a free port, and trusts every local connection.
As root, initdb and postgres refuse to run, so they run as the `postgres` OS user instead.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import glob
import logging
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

logger = logging.getLogger(__name__)
T = TypeVar("T")

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class NoPostgres(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


class PostgresStartError(RuntimeError):
    """The binaries exist but the server did not come up."""


def find_bindir() -> Path:
    """PIM_PG_BINDIR, else the newest /usr/lib/postgresql/*/bin, else the dir of `postgres`."""
    env = os.environ.get("PIM_PG_BINDIR")
    if env:
        if not (Path(env) / "postgres").is_file():
            raise NoPostgres(f"PIM_PG_BINDIR={env} has no `postgres` binary")
        return Path(env)
    candidates = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/postgres")]
    if candidates:

        def version(bindir: Path) -> tuple[int, ...]:
            name = bindir.parent.name
            return tuple(int(x) for x in name.split(".") if x.isdigit()) or (0,)

        return max(candidates, key=version)
    found = shutil.which("postgres")
    if found:
        return Path(found).resolve().parent
    raise NoPostgres("no PostgreSQL server binaries (set PIM_PG_BINDIR or install postgresql)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clean_env() -> dict[str, str]:
    # A developer's PGHOST/PGDATABASE/PGPORT must not redirect our commands.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


class PostgresServer:
    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_bindir()
        for tool in ("initdb", "pg_ctl", "psql"):
            if not (self.bindir / tool).is_file():
                raise NoPostgres(f"{self.bindir} has no `{tool}`")
        self.port = 0
        self.base: Path | None = None
        self._owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self._owner = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresStartError(
                    "running as root, but there is no `postgres` OS user to run the server as"
                ) from None

    # -- paths -------------------------------------------------------------------------------

    @property
    def datadir(self) -> Path:
        assert self.base is not None
        return self.base / "data"

    @property
    def sockdir(self) -> Path:
        assert self.base is not None
        return self.base / "sock"

    @property
    def logfile(self) -> Path:
        assert self.base is not None
        return self.base / "postgres.log"

    # -- running server commands (as `postgres` when we are root) -----------------------------

    def _as_owner(self, argv: list[str]) -> list[str]:
        if self._owner is None:
            return argv
        if shutil.which("runuser"):
            return ["runuser", "-u", self._owner.pw_name, "--", *argv]
        return ["su", self._owner.pw_name, "-s", "/bin/sh", "-c", shlex.join(argv)]

    def _run_server_tool(self, argv: list[str], timeout: float = 60) -> None:
        proc = subprocess.run(
            self._as_owner(argv),
            cwd=self.base,  # the owner may not be allowed into our cwd (e.g. /root)
            env=_clean_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise PostgresStartError(
                f"{shlex.join(argv)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
                f"{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        try:
            lines = self.logfile.read_text(errors="replace").splitlines()[-20:]
        except OSError:
            return ""
        return "\n--- server log ---\n" + "\n".join(lines)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> PostgresServer:
        self.base = Path(tempfile.mkdtemp(prefix="pim-pg-", dir="/tmp"))
        atexit.register(self.stop)
        try:
            os.chmod(self.base, 0o755)
            for d in (self.datadir, self.sockdir):
                d.mkdir(mode=0o700)
            if self._owner is not None:
                for p in (self.base, self.datadir, self.sockdir):
                    os.chown(p, self._owner.pw_uid, self._owner.pw_gid)
            self._run_server_tool(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.datadir),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ]
            )
            last: Exception | None = None
            for _ in range(3):  # the port we picked may be taken before postgres binds it
                self.port = _free_port()
                options = (
                    f"-F -p {self.port} -k {self.sockdir} -c listen_addresses=127.0.0.1 "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                    "-c max_connections=200"
                )
                try:
                    self._run_server_tool(
                        [
                            str(self.bindir / "pg_ctl"),
                            "start",
                            "-w",
                            "-t",
                            "60",
                            "-D",
                            str(self.datadir),
                            "-l",
                            str(self.logfile),
                            "-o",
                            options,
                        ],
                        timeout=90,
                    )
                    return self
                except PostgresStartError as exc:
                    last = exc
            raise last or PostgresStartError("postgres did not start")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        base, self.base = self.base, None
        if base is None:
            return
        atexit.unregister(self.stop)
        datadir = base / "data"
        if (datadir / "postmaster.pid").exists():
            argv = [
                str(self.bindir / "pg_ctl"),
                "stop",
                "-w",
                "-m",
                "immediate",
                "-D",
                str(datadir),
            ]
            try:
                stopped = (
                    subprocess.run(
                        self._as_owner(argv),
                        cwd=base,
                        env=_clean_env(),
                        stdin=subprocess.DEVNULL,
                        capture_output=True,
                        timeout=30,
                    ).returncode
                    == 0
                )
            except (OSError, subprocess.SubprocessError):
                stopped = False
            if not stopped:
                _kill_postmaster(datadir)
        shutil.rmtree(base, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- client side -------------------------------------------------------------------------

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        proc = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                dbname,
                "-c",
                sql,
            ],
            env=_clean_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"psql {sql!r} failed: {proc.stderr.strip()}")
        return proc.stdout

    def create_database(self, name: str, template: str | None = None) -> str:
        sql = f'CREATE DATABASE "{_ident(name)}"'
        if template:
            sql += f' TEMPLATE "{_ident(template)}"'
        self.psql(sql)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{_ident(name)}" WITH (FORCE)')


class DatabasePool:
    """Migrated, empty databases for one test at a time, cloned from `template`.

    Cloning copies the whole template (8 MB, mostly catalogs) and dropping removes it again:
    most of a second per test on a busy machine. A released database is emptied instead
    (every row deleted, every sequence restarted, the template's tables and revision checked)
    and renamed, so the URL the last test had, and anything it left running, reaches nothing;
    the next test gets it under its new name. One that fails any of this is dropped.
    """

    def __init__(self, server: PostgresServer, template: str) -> None:
        self.server, self.template = server, template
        self._free: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pg-pool", daemon=True)
        self._thread.start()
        self._admin: asyncpg.Connection | None = None
        self._shape = self._run(self._read_shape(template))

    def acquire(self) -> str:
        """The name of a migrated, empty database of the caller's own."""
        if self._free:
            return self._free.pop()
        name = f"test_{uuid.uuid4().hex}"
        self._run(self._admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
        return name

    def release(self, name: str) -> None:
        try:
            self._free.append(self._run(self._recycle(_ident(name))))
        except Exception:
            logger.warning("database %s not reusable; dropping it", name, exc_info=True)
            self.server.drop_database(name)

    def close(self) -> None:
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._run(self._admin.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    # -- on the pool's own event loop ---------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=120)

    async def _connect(self, dbname: str) -> asyncpg.Connection:
        return await asyncpg.connect(
            host="127.0.0.1", port=self.server.port, user="postgres", database=dbname
        )

    async def _admin_execute(self, sql: str, *args: object) -> None:
        if self._admin is None or self._admin.is_closed():
            self._admin = await self._connect("postgres")
        await self._admin.execute(sql, *args)

    async def _read_shape(self, dbname: str) -> _Shape:
        conn = await self._connect(dbname)
        try:
            return await _shape(conn)
        finally:
            await conn.close()

    async def _recycle(self, name: str) -> str:
        # Connections the test left open (its engines, a server it started) end here; they
        # could hold locks on the rows about to be deleted.
        await self._admin_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        conn = await self._connect(name)
        try:
            if await _shape(conn) != self._shape:
                raise RuntimeError(f"{name} no longer has the template's tables and revision")
            tables, sequences, _ = self._shape
            # One script, one round trip. Replica mode skips the foreign-key triggers, so the
            # tables can be emptied in any order.
            await conn.execute(
                ";".join(
                    [
                        "BEGIN",
                        "SET LOCAL session_replication_role = replica",
                        *(f"DELETE FROM {t}" for t in tables if t != "alembic_version"),
                        *(f"SELECT setval('{q}', {int(start)}, false)" for q, start in sequences),
                        "COMMIT",
                    ]
                )
            )
        finally:
            await conn.close()
        fresh = f"test_{uuid.uuid4().hex}"
        # Waits (5 s) for terminated backends to go; fails if anything connected again.
        await self._admin_execute(f'ALTER DATABASE "{name}" RENAME TO "{fresh}"')
        return fresh


_Shape = tuple[list[str], list[tuple[str, int]], str]


async def _shape(conn: asyncpg.Connection) -> _Shape:
    """(tables, sequences with their start values, schema revision) of a database."""
    tables = await conn.fetch(
        "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
    )
    sequences = await conn.fetch(
        "SELECT quote_ident(sequencename), start_value FROM pg_sequences "
        "WHERE schemaname = 'public' ORDER BY 1"
    )
    revision = await conn.fetchval("SELECT string_agg(version_num, ',') FROM alembic_version")
    return [r[0] for r in tables], [(r[0], r[1]) for r in sequences], revision


def _ident(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"not a plain database name: {name!r}")
    return name


def _kill_postmaster(datadir: Path) -> None:
    """Last resort when `pg_ctl stop` failed: SIGQUIT (immediate shutdown) to the postmaster."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((datadir / "postmaster.pid").read_text().splitlines()[0])
        if b"postgres" in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGQUIT)
