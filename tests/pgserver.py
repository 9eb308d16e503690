"""A throwaway PostgreSQL server for tests: initdb into a temp dir, start, stop, remove.

No pytest here; tests/conftest.py wraps it in fixtures. The server is tuned for speed, not
durability (fsync off), listens on 127.0.0.1 on a free port, and trusts every local connection.
As root, initdb and postgres refuse to run, so they run as the `postgres` OS user instead.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

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
