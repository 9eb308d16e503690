"""`pim-bot serve` as a real process: health, start-up log, clean stop on SIGTERM/SIGINT;
configuration errors; `pim-bot db upgrade`."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
import yaml
from clihelp import Run, assert_no_traceback, free_port


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


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"PIM_DIGEST_CRON": "not a cron"}, "PIM_DIGEST_CRON"),
        ({"PIM_TIMEZONE": "Mars/Olympus_Mons"}, "PIM_TIMEZONE"),
        ({"PORT": "eighty"}, "PORT"),
    ],
)
def test_bad_configuration_is_one_line_and_exit_2(
    run_pim: Run, tmp_path: Path, env: dict[str, str], names: str
) -> None:
    result = run_pim(
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(free_port()),
        db=f"sqlite:///{tmp_path}/never.db",
        env=env,
        timeout=30,
    )
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


@pytest.mark.postgres
@pytest.mark.parametrize("command", [("db", "upgrade"), ("serve", "--port", "0")])
def test_postgresql_database_that_is_not_there_is_one_line(
    command: tuple[str, ...], run_pim: Run, pg_server
) -> None:
    # What a compose user meets after changing POSTGRES_DB or the password in .env once the
    # volume exists: the server answers, but refuses this database.
    result = run_pim(*command, db=pg_server.url("no_such_db"))
    assert result.returncode == 2
    assert_no_traceback(result.stderr)
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"pim-bot: database error at 127.0.0.1:{pg_server.port}/")
    assert '"no_such_db" does not exist' in result.stderr
