"""`pim-bot doctor` names every broken thing with its fix, and `serve` refuses to start on a
credential that does not work, with one line, against local fakes of Slack and Microsoft's
login endpoint."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from clihelp import EXAMPLE_POLICY, Run, assert_no_traceback, free_port
from sqlalchemy import text

from bot.checks import Check
from bot.config import Settings
from bot.doctor import run_doctor, table
from bot.runtime import Runtime
from bot.slack.startup import _clock
from tests.slackfake import FakeSlackAPI
from tests.teamsfake import FakeLogin

APP_ID = "00000000-0000-0000-0000-0000000000b0"


def row(checks: list[Check], name: str) -> Check:
    (found,) = [c for c in checks if c.name == name]
    return found


def failed(checks: list[Check]) -> set[str]:
    return {c.name for c in checks if not c.ok}


async def migrated(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/pim.db"
    runtime = Runtime.build(Settings.from_env({"DATABASE_URL": url}))
    try:
        await runtime.prepare()
    finally:
        await runtime.close()
    return url


async def test_all_ok_on_a_migrated_database_with_working_credentials(tmp_path: Path):
    url = await migrated(tmp_path)
    async with FakeSlackAPI() as slack, FakeLogin(app_id=APP_ID, secret="s3cret") as login:
        checks = await run_doctor(
            {
                "DATABASE_URL": url,
                "PIM_POLICY": str(EXAMPLE_POLICY),
                "SLACK_BOT_TOKEN": "xoxb-1",
                "SLACK_API_URL": slack.base_url,
                "MICROSOFT_APP_ID": APP_ID,
                "MICROSOFT_APP_PASSWORD": "s3cret",
                "MICROSOFT_LOGIN_URL": login.url,
            }
        )
    assert failed(checks) == set(), table(checks)
    assert [c.name for c in checks] == [
        "configuration",
        "time zone",
        "cron",
        "database",
        "migrations",
        "audit chain",
        "policy",
        "slack",
        "slack scopes",
        "clock",
        "teams",
    ]
    assert not any(c.skipped for c in checks)
    assert login.requests[0]["tenant"] == "botframework.com"


async def test_configuration_time_zone_and_cron(tmp_path: Path):
    checks = await run_doctor({"DATABASE_URL": f"sqlite:///{tmp_path}/x.db", "PORT": "eighty"})
    assert failed(checks) == {"configuration"}
    assert "PORT" in row(checks, "configuration").detail

    url = await migrated(tmp_path)
    checks = await run_doctor(
        {"DATABASE_URL": url, "PIM_TIMEZONE": "Mars/Olympus", "PIM_DIGEST_CRON": "every monday"}
    )
    assert failed(checks) == {"time zone", "cron"}
    assert "Europe/Berlin" in row(checks, "time zone").fix
    assert "'0 9 * * mon'" in row(checks, "cron").fix
    assert row(checks, "database").ok  # the other checks still ran


async def test_database_unreachable(tmp_path: Path):
    checks = await run_doctor({"DATABASE_URL": f"sqlite:///{tmp_path}/no/such/dir/pim.db"})
    assert failed(checks) == {"database"}
    assert "DATABASE_URL" in row(checks, "database").fix


async def test_migrations_behind(tmp_path: Path):
    checks = await run_doctor({"DATABASE_URL": f"sqlite:///{tmp_path}/empty.db"})
    assert failed(checks) == {"migrations"}
    assert "pim-bot db upgrade" in row(checks, "migrations").fix


async def test_audit_chain_edited_and_key_missing(tmp_path: Path):
    url = await migrated(tmp_path)
    key = "k" * 32
    runtime = Runtime.build(
        Settings.from_env(
            {"DATABASE_URL": url, "PIM_AUDIT_KEY": key, "PIM_POLICY": str(EXAMPLE_POLICY)}
        )
    )
    try:
        await runtime.prepare()  # the policy's changes are audited, keyed
    finally:
        await runtime.close()
    checks = await run_doctor({"DATABASE_URL": url})
    assert failed(checks) == {"audit chain"}
    assert "PIM_AUDIT_KEY" in row(checks, "audit chain").fix

    runtime = Runtime.build(Settings.from_env({"DATABASE_URL": url}))
    try:
        async with runtime.uow.transaction() as s:
            await s.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE id = 2"))
    finally:
        await runtime.close()
    checks = await run_doctor({"DATABASE_URL": url, "PIM_AUDIT_KEY": key})
    assert failed(checks) == {"audit chain"}
    assert row(checks, "audit chain").detail.startswith("event 2: contents do not match")


async def test_policy_file_with_a_mistake(tmp_path: Path):
    url = await migrated(tmp_path)
    bad = tmp_path / "policy.yaml"
    bad.write_text("admins: [alice@contoso.com]\nroles:\n  - id: x\n    colour: red\n")
    checks = await run_doctor({"DATABASE_URL": url, "PIM_POLICY": str(bad)})
    assert failed(checks) == {"policy"}
    assert "--dry-run" in row(checks, "policy").fix
    checks = await run_doctor({"DATABASE_URL": url, "PIM_POLICY": str(tmp_path / "missing")})
    assert failed(checks) == {"policy"}


async def test_slack_wrong_token_and_missing_scope(tmp_path: Path):
    url = await migrated(tmp_path)
    async with FakeSlackAPI(token="xoxb-right") as slack:
        env = {"DATABASE_URL": url, "SLACK_API_URL": slack.base_url}
        checks = await run_doctor({**env, "SLACK_BOT_TOKEN": "xoxb-wrong"})
        assert failed(checks) == {"slack"}
        assert "invalid_auth" in row(checks, "slack").detail
        assert "SLACK_BOT_TOKEN" in row(checks, "slack").fix

        slack.scopes.remove("users:read.email")
        checks = await run_doctor({**env, "SLACK_BOT_TOKEN": "xoxb-right"})
        assert failed(checks) == {"slack scopes"}
        assert row(checks, "slack scopes").detail == "the bot token lacks users:read.email"
        assert "reinstall the app" in row(checks, "slack scopes").fix


def test_clock_skew_against_slacks_date():
    assert _clock(format_datetime(datetime.now(UTC), usegmt=True)).ok
    skewed = _clock(format_datetime(datetime.now(UTC) - timedelta(minutes=10), usegmt=True))
    assert not skewed.ok
    assert skewed.detail.startswith("this machine's clock is +6")
    assert "NTP" in skewed.fix


async def test_teams_wrong_secret_and_unknown_app(tmp_path: Path):
    url = await migrated(tmp_path)
    async with FakeLogin(app_id=APP_ID, secret="s3cret") as login:
        env = {
            "DATABASE_URL": url,
            "MICROSOFT_LOGIN_URL": login.url,
            "MICROSOFT_APP_TYPE": "SingleTenant",
            "MICROSOFT_APP_TENANT_ID": "contoso-tid",
        }
        checks = await run_doctor(
            {**env, "MICROSOFT_APP_ID": APP_ID, "MICROSOFT_APP_PASSWORD": "wrong"}
        )
        assert failed(checks) == {"teams"}
        assert "AADSTS7000215" in row(checks, "teams").detail
        assert "client secret" in row(checks, "teams").fix
        assert login.requests[-1]["tenant"] == "contoso-tid"
        checks = await run_doctor(
            {**env, "MICROSOFT_APP_ID": "not-the-app", "MICROSOFT_APP_PASSWORD": "s3cret"}
        )
        assert failed(checks) == {"teams"}
        assert "unauthorized_client" in row(checks, "teams").detail


async def test_doctor_command_prints_the_table_and_exits_1(run_pim: Run, tmp_path: Path):
    result = await asyncio.to_thread(
        run_pim, "doctor", db=f"sqlite:///{tmp_path}/empty.db", env={"PIM_TIMEZONE": "Nowhere/Land"}
    )
    assert result.returncode == 1, result.stderr
    assert_no_traceback(result.stdout, result.stderr)
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ok", "configuration", "environment", "read"]
    assert any(line.startswith("FAIL  time zone") for line in lines)
    assert any(line.startswith("FAIL  migrations") for line in lines)
    assert any("fix: run `pim-bot db upgrade`" in line for line in lines)


@pytest.mark.parametrize("problem", ["wrong token", "missing scope"])
async def test_serve_refuses_a_bad_slack_token_with_one_line(
    run_pim: Run, tmp_path: Path, problem: str
):
    async with FakeSlackAPI(token="xoxb-right") as slack:
        token = "xoxb-wrong" if problem == "wrong token" else "xoxb-right"
        if problem == "missing scope":
            slack.scopes.remove("chat:write")
        result = await asyncio.to_thread(
            run_pim,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(free_port()),
            db=f"sqlite:///{tmp_path}/pim.db",
            timeout=30,
            env={
                "SLACK_BOT_TOKEN": token,
                "SLACK_SIGNING_SECRET": "x" * 32,
                "SLACK_API_URL": slack.base_url,
            },
        )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    expected = (
        "pim-bot: slack: Slack refused SLACK_BOT_TOKEN (invalid_auth)"
        if problem == "wrong token"
        else "pim-bot: slack scopes: the bot token lacks chat:write — add it"
    )
    assert result.stderr.startswith(expected), result.stderr
    assert not (tmp_path / "pim.db").exists()  # refused before touching the database


async def test_serve_refuses_a_wrong_teams_secret_with_one_line(run_pim: Run, tmp_path: Path):
    async with FakeLogin(app_id=APP_ID, secret="s3cret") as login:
        result = await asyncio.to_thread(
            run_pim,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(free_port()),
            db=f"sqlite:///{tmp_path}/pim.db",
            timeout=30,
            env={
                "MICROSOFT_APP_ID": APP_ID,
                "MICROSOFT_APP_PASSWORD": "wrong",
                "MICROSOFT_LOGIN_URL": login.url,
                "PIM_TEAMS_TENANTS": "t1",
            },
        )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(
        "pim-bot: teams: Microsoft refused MICROSOFT_APP_ID/"
        "MICROSOFT_APP_PASSWORD (invalid_client: AADSTS7000215"
    )
