"""`pim-bot doctor`: every check a running pim-bot depends on, as a table of ok/fail with the
fix for each. It changes nothing (no migration, no policy applied, nothing sent)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import text

from bot.checks import Check
from bot.config import ConfigError, Settings
from bot.runtime import Runtime
from handlers.errors import PimError
from handlers.policy.file import parse_policy, read_policy_file
from storage.audit import AuditKeyError, check_key, verify_chain
from storage.migrate import revision_status

_DEFAULTS = {"PIM_TIMEZONE": "UTC", "PIM_DIGEST_CRON": "0 9 * * mon"}


def _time_zone(env: Mapping[str, str]) -> Check:
    name = env.get("PIM_TIMEZONE", "").strip() or "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return Check.failed(
            "time zone",
            f"PIM_TIMEZONE {name!r} is not a time zone name",
            "use an IANA name such as Europe/Berlin (install tzdata if the system has none)",
        )
    return Check.passed("time zone", name)


def _cron(env: Mapping[str, str]) -> Check:
    line = env.get("PIM_DIGEST_CRON", "").strip() or _DEFAULTS["PIM_DIGEST_CRON"]
    zone = env.get("PIM_TIMEZONE", "").strip() or "UTC"
    try:
        trigger = CronTrigger.from_crontab(line, timezone=ZoneInfo(zone))
    except (ValueError, ZoneInfoNotFoundError) as err:
        return Check.failed(
            "cron",
            f"PIM_DIGEST_CRON {line!r}: {err}",
            "five fields: minute hour day month weekday, e.g. '0 9 * * mon'",
        )
    upcoming = trigger.get_next_fire_time(None, datetime.now(UTC))
    return Check.passed("cron", f"{line!r}, next digest {upcoming:%Y-%m-%d %H:%M %Z}")


def settings_checks(env: Mapping[str, str]) -> tuple[Settings | None, list[Check]]:
    """The configuration, time zone and cron rows; Settings when the rest can run."""
    zone, cron = _time_zone(env), _cron(env)
    # A bad zone or cron line has its own row; the other checks still run with the default.
    clean = {
        k: v
        for k, v in env.items()
        if not (k == "PIM_TIMEZONE" and not zone.ok or k == "PIM_DIGEST_CRON" and not cron.ok)
    }
    try:
        settings = Settings.from_env(clean)
    except ConfigError as err:
        return None, [
            Check.failed(
                "configuration", str(err), "fix that environment variable (docs/configuration.md)"
            ),
            zone,
            cron,
        ]
    return settings, [Check.passed("configuration", "environment read"), zone, cron]


async def database_checks(runtime: Runtime) -> list[Check]:
    try:
        async with runtime.uow.read() as s:
            await s.execute(text("SELECT 1"))
        current, head = await revision_status(runtime.uow.engine)
    except Exception as err:  # whatever the driver says, the row shows it
        return [
            Check.failed(
                "database",
                f"{runtime.uow.dialect}: {type(err).__name__}: {str(err).splitlines()[0][:160]}",
                "check DATABASE_URL, that the server runs and accepts this user",
            ),
            Check.skip("migrations", "no database"),
            Check.skip("audit chain", "no database"),
        ]
    checks = [Check.passed("database", runtime.uow.dialect)]
    if current != head:
        checks.append(
            Check.failed(
                "migrations",
                f"schema {current or 'empty'}, code needs {head}",
                "run `pim-bot db upgrade` (serve does it at start)",
            )
        )
        return [*checks, Check.skip("audit chain", "schema not current")]
    checks.append(Check.passed("migrations", f"at {head}"))
    return [*checks, await _audit(runtime)]


async def _audit(runtime: Runtime) -> Check:
    try:
        async with runtime.uow.read() as s:
            await check_key(s)
            result = await verify_chain(s)
    except AuditKeyError as err:
        return Check.failed(
            "audit chain", str(err), "set PIM_AUDIT_KEY to the key the log was written with"
        )
    if not result.ok:
        return Check.failed(
            "audit chain",
            f"event {result.broken_id}: {result.reason}",
            "restore the database from a backup and compare with your "
            "checkpoints (`pim-bot audit verify --checkpoint FILE`)",
        )
    return Check.passed("audit chain", f"{result.checked} events intact")


def policy_check(settings: Settings) -> Check:
    if not settings.policy_file:
        return Check.skip("policy", "PIM_POLICY is not set")
    try:
        raw = read_policy_file(settings.policy_file, max_bytes=settings.policy_max_bytes)
        doc = parse_policy(
            raw,
            source=settings.policy_file,
            now=datetime.now(UTC),
            max_bytes=settings.policy_max_bytes,
        )
    except (PimError, OSError, UnicodeDecodeError) as err:
        first = str(err).splitlines()[0][:200]
        return Check.failed(
            "policy",
            first,
            "fix the file (docs/policy.md); "
            "`pim-bot policy apply FILE --dry-run` lists every mistake",
        )
    return Check.passed(
        "policy",
        f"{settings.policy_file}: {len(doc.principals)} principals, {len(doc.roles)} roles",
    )


async def run_doctor(env: Mapping[str, str] | None = None) -> list[Check]:
    from bot.slack.startup import check_slack
    from bot.teams.startup import check_teams

    settings, checks = settings_checks(os.environ if env is None else env)
    if settings is None:
        return checks
    runtime = Runtime.build(settings)
    try:
        checks += await database_checks(runtime)
    finally:
        await runtime.close()
    checks.append(policy_check(settings))
    checks += await check_slack(settings)
    checks += await check_teams(settings)
    return checks


def table(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        mark = "skip" if c.skipped else "ok" if c.ok else "FAIL"
        lines.append(f"{mark:<4}  {c.name:<{width}}  {c.detail}")
        if not c.ok:
            lines.append(f"{'':<4}  {'':<{width}}  fix: {c.fix}")
    return "\n".join(lines) + "\n"
