"""`pim-bot serve` as a real process: health, start-up log, clean stop on SIGTERM/SIGINT;
configuration errors; `pim-bot db upgrade`."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import aiohttp
import pytest
import yaml
from clihelp import EXAMPLE_POLICY, Run, assert_no_traceback, clean_env, pim_command

START_TIMEOUT = 20
STOP_TIMEOUT = 10


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _default_sigint() -> None:
    """A shell's background job starts with SIGINT ignored, and so would the server when the
    tests run that way; give it the disposition it has under a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Server:
    def __init__(self, proc: subprocess.Popen[bytes], log: Path, port: int) -> None:
        self.proc, self.log_path, self.port = proc, log, port

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    async def healthz(self) -> tuple[int, dict]:
        """Poll GET /healthz until it answers; fail fast if the process dies."""
        url = f"http://127.0.0.1:{self.port}/healthz"
        deadline = time.monotonic() + START_TIMEOUT
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            while True:
                assert self.proc.poll() is None, f"serve exited early:\n{self.log}"
                try:
                    async with http.get(url) as resp:
                        return resp.status, await resp.json()
                except aiohttp.ClientConnectionError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"no answer from {url} in {START_TIMEOUT}s:\n{self.log}")
                    await asyncio.sleep(0.1)

    def stop(self, sig: signal.Signals) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve still running {STOP_TIMEOUT}s after {sig.name}:\n{self.log}")


@pytest.fixture
def start_serve(workdir: Path) -> Iterator:
    started: list[Server] = []

    def start(db: str, *args: str, env: Mapping[str, str] | None = None,
              port: int | None = None) -> Server:
        port = port or free_port()
        log = workdir / f"serve-{len(started)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*pim_command(), "serve", "--host", "127.0.0.1", *args], cwd=workdir,
                env=clean_env(db, {"PIM_POLICY": str(EXAMPLE_POLICY), **(env or {})}),
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                preexec_fn=_default_sigint,
            )
        server = Server(proc, log, port)
        started.append(server)
        return server

    yield start
    for server in started:  # a failed test must not leave a server behind
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(timeout=STOP_TIMEOUT)


def test_serve_health_and_sigterm(start_serve, run_pim: Run, sqlite_url: str) -> None:
    port = free_port()
    server = start_serve(sqlite_url, "--port", str(port), port=port)
    status, body = asyncio.run(server.healthz())
    assert status == 200, body
    assert body["status"] == "ok"
    assert body["database"] == "sqlite"
    assert body["schema"] == body["schema_head"]

    log = server.log
    assert "Slack is not started" in log
    assert "Teams is not started" in log
    assert f"listening on http://127.0.0.1:{port}" in log
    assert "+ role global-admin (Global Administrator)" in log  # PIM_POLICY applied

    # Heroku stops a dyno with SIGTERM: the process must shut down cleanly and quickly.
    assert server.stop(signal.SIGTERM) == 0, server.log
    assert_no_traceback(server.log)
    assert "Scheduler has been shut down" in server.log

    # PIM_POLICY was applied at start-up.
    exported = run_pim("policy", "export", db=sqlite_url)
    assert "bob@contoso.com" in [p["email"] for p in yaml.safe_load(exported.stdout)["principals"]]


def test_serve_port_from_env_and_sigint(start_serve, sqlite_url: str) -> None:
    port = free_port()
    server = start_serve(sqlite_url, env={"PORT": str(port)}, port=port)
    status, body = asyncio.run(server.healthz())
    assert (status, body["status"]) == (200, "ok")
    assert server.stop(signal.SIGINT) in (0, 130)
    assert_no_traceback(server.log)


@pytest.mark.parametrize(("env", "names"), [
    ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    ({"PIM_DIGEST_CRON": "not a cron"}, "PIM_DIGEST_CRON"),
    ({"PIM_TIMEZONE": "Mars/Olympus_Mons"}, "PIM_TIMEZONE"),
    ({"PORT": "eighty"}, "PORT"),
])
def test_bad_configuration_is_one_line_and_exit_2(
    run_pim: Run, tmp_path: Path, env: dict[str, str], names: str
) -> None:
    result = run_pim("serve", "--host", "127.0.0.1", "--port", str(free_port()),
                     db=f"sqlite:///{tmp_path}/never.db", env=env, timeout=30)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"pim-bot: {names}")
    assert not (tmp_path / "never.db").exists()  # refused before touching the database


def test_db_upgrade_is_idempotent(run_pim: Run, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fresh.db"  # plain sqlite:/// is mapped to the async driver
    for _ in range(2):
        result = run_pim("db", "upgrade", db=url)
        assert (result.returncode, result.stdout) == (0, "Database is up to date.\n")
        assert_no_traceback(result.stderr)
    assert (tmp_path / "fresh.db").is_file()
    verify = run_pim("audit", "verify", db=url)
    assert verify.stdout == "OK: 0 audit events, chain intact.\n"


def test_db_that_cannot_be_opened_is_one_line(run_pim: Run, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/no/such/dir/pim.db"
    result = run_pim("db", "upgrade", db=url)
    assert result.returncode == 2
    assert_no_traceback(result.stderr)
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("pim-bot: ")
