"""`pim-bot`: serve, console, policy, db, audit, digest, review, teams, people."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from bot.checks import StartupRefused
from bot.cli_audit import AuditUsageError, add_audit_parser, check_arguments, run_audit
from bot.cli_grants import add_grants_parser, cmd_grants
from bot.cli_review import add_review_parser, run_review
from bot.config import ConfigError, Settings
from bot.console import Console
from bot.digest_schedule import digest_options
from bot.grant_providers import providers_from
from bot.logs import configure as configure_logging
from bot.outbox import Transport
from bot.runtime import Runtime
from cards.text import render
from handlers.clock import Clock, ShiftedClock
from handlers.commands import UserRef
from handlers.digest.report import compute_digest
from handlers.digest.send import send_digest
from handlers.durations import DurationError, parse_duration
from handlers.errors import PimError
from handlers.grammar import CommandError, parse_account
from handlers.linking import link_account
from handlers.policy import apply_policy, export_policy, read_policy_file
from storage.audit import AuditKeyError
from storage.migrate import upgrade

logger = logging.getLogger("pim-bot")

Command = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pim-bot", description="Privileged Identity Management in chat."
    )
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP server, scheduler and transports")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=None, help="default: $PORT or 3000")

    console = sub.add_parser("console", help="chat with pim-bot in this terminal")
    console.add_argument("--as", dest="actor", required=True, metavar="EMAIL")
    console.add_argument("--policy", help="apply this policy file first (default: $PIM_POLICY)")

    policy = sub.add_parser("policy", help="policy as code").add_subparsers(
        dest="policy_command", required=True, metavar="apply|export"
    )
    apply = policy.add_parser("apply", help="apply a policy file")
    apply.add_argument("file")
    apply.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    apply.add_argument(
        "--prune",
        action="store_true",
        help="remove policy-made assignments the file no longer lists",
    )
    export = policy.add_parser("export", help="print the current policy as YAML")
    export.add_argument("-o", "--output", help="write to this file instead of stdout")

    db = sub.add_parser("db", help="database").add_subparsers(
        dest="db_command", required=True, metavar="upgrade"
    )
    db.add_parser("upgrade", help="migrate the schema to the newest version")

    add_audit_parser(sub)
    add_review_parser(sub)
    add_grants_parser(sub)

    sub.add_parser(
        "doctor",
        help="check the database, migrations, policy, Slack, Teams, "
        "audit chain, time zone and cron; print what to fix",
    )

    digest = sub.add_parser("digest", help="the admins' periodic digest").add_subparsers(
        dest="digest_command", required=True, metavar="preview|send"
    )
    preview = digest.add_parser("preview", help="print the digest here; send and record nothing")
    preview.add_argument(
        "--since",
        metavar="DATE|DURATION",
        help="period start: 2026-03-01, 2026-03-01T09:00 or a duration back "
        "from --until such as 14d (default: 7 days)",
    )
    preview.add_argument("--until", metavar="DATE", help="period end (default: now)")
    digest.add_parser("send", help="send the digest for the period ending now to every admin")

    people = sub.add_parser("people", help="who is who in chat").add_subparsers(
        dest="people_command", required=True, metavar="link"
    )
    link = people.add_parser(
        "link",
        help="bind a Slack or Teams account to a person, replacing the one they had (audited)",
    )
    link.add_argument("email")
    link.add_argument("account", metavar="slack:U…|teams:…")

    teams = sub.add_parser("teams", help="Microsoft Teams").add_subparsers(
        dest="teams_command", required=True, metavar="package"
    )
    package = teams.add_parser("package", help="write the app package to upload to Teams")
    package.add_argument("--app-id", required=True, help="the bot's Microsoft App ID (GUID)")
    package.add_argument("-o", "--output", default="pim-bot-teams.zip")
    # Teams shows these links on the app's page: they must be the organisation's own.
    package.add_argument("--website", required=True, help="your page about pim-bot (https)")
    package.add_argument("--privacy-url", required=True, help="your privacy statement (https)")
    package.add_argument("--terms-url", required=True, help="your terms of use (https)")
    return p


async def _with_runtime(
    settings: Settings,
    body: Callable[[Runtime], Awaitable[int]],
    *,
    prepare: bool = True,
    clock: Clock | None = None,
) -> int:
    runtime = Runtime.build(settings, clock=clock)
    try:
        if prepare:
            await runtime.prepare()
        else:
            await upgrade(runtime.uow.engine)
        return await body(runtime)
    finally:
        await runtime.close()


async def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    # The web server and the transports' SDKs load only here: every other command starts
    # in half the time.
    from aiohttp import web

    from bot.server import AccessLog, make_app
    from bot.slack.app import build_slack, log_workspace, mount, slack_missing
    from bot.slack.workspace_source import workspace_source
    from bot.teams.adapter import teams_missing
    from bot.teams.app import build_teams
    from bot.teams.app import mount as mount_teams

    port = args.port or settings.port
    await _refuse_bad_credentials(settings, slack=slack_missing(settings) is None)

    async def body(runtime: Runtime) -> int:
        web_app = make_app(runtime)
        transports: list[Transport] = []
        slack = None
        if (why := slack_missing(settings)) is not None:
            logger.info("Slack is not started: %s", why)
        else:
            slack = build_slack(settings, runtime.chat())
            runtime.slack_people = workspace_source(settings)  # `directory: [{slack: …}]`
            await log_workspace(settings, slack.app)
            transports.append(slack.transport)
            if settings.slack_signing_secret:
                mount(web_app, slack.app)
                logger.info("Slack: HTTP mode on POST /slack/events")
        if (why := teams_missing(settings)) is not None:
            logger.info("Teams is not started: %s", why)
        else:
            teams = build_teams(settings, runtime.chat("teams"))
            transports.append(teams.transport)
            mount_teams(web_app, teams)
            logger.info("Teams: Bot Framework on POST /api/messages")
        runtime.providers = providers_from(settings)
        runtime.start_background(transports)
        if slack is not None and slack.socket_mode is not None:
            await slack.socket_mode.connect_async()
            logger.info("Slack: Socket Mode connected")
        runner = web.AppRunner(web_app, access_log_class=AccessLog)
        await runner.setup()
        await web.TCPSite(runner, args.host, port).start()
        logger.info(
            "pim-bot listening on http://%s:%s (database: %s)", args.host, port, runtime.uow.dialect
        )
        # Everything loaded so far lives as long as the process: moving it out of the
        # collector's reach keeps full collections short, and with them the slowest answers.
        # A request frees nearly all it allocates by reference counting, so the cycle
        # collector can run far less often than every 700 allocations (bench/ack.py: p99
        # 145 -> 52 ms on SQLite, 192 -> 74 ms on PostgreSQL).
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 50, 100)
        stop = asyncio.Event()
        _stop_on_sigterm(stop)
        try:
            await stop.wait()
        finally:
            if slack is not None and slack.socket_mode is not None:
                await slack.socket_mode.close_async()
            await runner.cleanup()
        return 0

    return await _with_runtime(settings, body)


async def _refuse_bad_credentials(settings: Settings, *, slack: bool) -> None:
    """A wrong token or a missing scope stops serve now, with one line, rather than showing
    later as messages that fail to send."""
    from bot.slack.startup import check_slack
    from bot.teams.startup import check_teams

    checks = (await check_slack(settings) if slack else []) + await check_teams(settings)
    for check in checks:
        if not check.ok and check.name != "clock":  # a skewed clock is a warning here
            raise StartupRefused(check)
        if not check.ok:
            logger.warning("%s", check.line())


async def cmd_doctor(args: argparse.Namespace, settings: Settings | None) -> int:
    from bot.doctor import run_doctor, table

    checks = await run_doctor()
    print(table(checks), end="")
    return 0 if all(c.ok for c in checks) else 1


def _stop_on_sigterm(stop: asyncio.Event) -> None:
    """Heroku (and every container runtime) stops a dyno with SIGTERM: shut down cleanly."""

    def on_sigterm() -> None:
        logger.info("SIGTERM received: shutting down")
        stop.set()

    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, on_sigterm)
    except (NotImplementedError, RuntimeError):  # Windows: no signal handlers on the loop
        pass


async def cmd_console(args: argparse.Namespace, settings: Settings) -> int:
    if args.policy:
        settings = replace(settings, policy_file=args.policy)

    async def body(runtime: Runtime) -> int:
        console = Console(runtime, actor=args.actor)
        runtime.providers = providers_from(settings)
        runtime.start_background([console.transport])
        await console.run(sys.stdin)
        return 0

    # `wait 1d` moves this clock a day ahead: the console never waits for real.
    return await _with_runtime(settings, body, clock=ShiftedClock())


async def cmd_policy(args: argparse.Namespace, settings: Settings) -> int:
    missing = _missing_sqlite_file(settings) if getattr(args, "dry_run", False) else None
    if missing is not None:
        # A dry run changes nothing, the file system included: plan against a throwaway
        # empty database instead of creating (and migrating) one at the path.
        with tempfile.TemporaryDirectory() as scratch:
            print(f"(no database at {missing} yet: planned against an empty one)")
            empty = replace(settings, database_url=f"sqlite+aiosqlite:///{scratch}/plan.db")
            return await _apply_policy(args, empty)
    return await _apply_policy(args, settings)


def _missing_sqlite_file(settings: Settings) -> Path | None:
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    path = Path(url.database).resolve()
    return None if path.exists() else path


def database_place(database_url: str) -> str:
    """Where the database is, for an error message: the file's path, or host:port/name."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        name = url.database or ":memory:"
        return name if name == ":memory:" else str(Path(name).resolve())
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


async def _apply_policy(args: argparse.Namespace, settings: Settings) -> int:
    async def body(runtime: Runtime) -> int:
        if args.policy_command == "export":
            _write(args.output, await export_policy(runtime.uow))
            return 0
        limit = settings.policy_max_bytes
        text = read_policy_file(args.file, max_bytes=limit)
        plan = await apply_policy(
            runtime.uow,
            runtime.clock,
            text=text,
            source=args.file,
            dry_run=args.dry_run,
            prune=args.prune,
            max_bytes=limit,
        )
        print(plan.render())
        if args.dry_run:
            print("(dry run: nothing changed)")
        return 0

    return await _with_runtime(settings, body, prepare=False)


async def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    return await _with_runtime(
        settings, lambda runtime: _done("Database is up to date."), prepare=False
    )


async def _done(message: str) -> int:
    print(message)
    return 0


async def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    checkpoints = check_arguments(args)  # bad arguments and files fail before the database
    return await _with_runtime(
        settings, lambda runtime: run_audit(args, runtime, checkpoints), prepare=False
    )


def _write(path: str | None, text: str) -> None:
    if path:
        Path(path).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


class BadArgument(ValueError):
    pass


def _when(raw: str, flag: str, timezone: str) -> datetime:
    """A date (its midnight) or a date and time, in PIM_TIMEZONE unless an offset is given."""
    try:
        at = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise BadArgument(
            f"{flag} {raw!r} is not a date (e.g. 2026-03-01 or 2026-03-01T09:00)"
        ) from None
    if len(raw.strip()) == 10:  # a bare date
        at = datetime.combine(date.fromisoformat(raw.strip()), time())
    return at if at.tzinfo else at.replace(tzinfo=ZoneInfo(timezone))


def _period(
    args: argparse.Namespace, settings: Settings, now: datetime
) -> tuple[datetime | None, datetime]:
    until = _when(args.until, "--until", settings.timezone) if args.until else now
    since: datetime | None = None
    if args.since:
        try:
            since = until - parse_duration(args.since)
        except DurationError as err:
            if "too long" in str(err):  # a duration past the cap, not a bad format
                raise BadArgument(f"--since {args.since!r}: {err}") from None
            try:
                since = _when(args.since, "--since", settings.timezone)
            except BadArgument:
                raise BadArgument(
                    f"--since {args.since!r} is neither a date (2026-03-01) nor a duration (14d)"
                ) from None
    if since is not None and since >= until:
        raise BadArgument("--since must be before --until")
    if until - (since or until - timedelta(days=7)) > timedelta(days=3660):
        raise BadArgument("the period is longer than ten years (3,650 days at most)")
    return since, until


async def cmd_digest(args: argparse.Namespace, settings: Settings) -> int:
    options = digest_options(settings)

    async def body(runtime: Runtime) -> int:
        now = runtime.clock.now()
        if args.digest_command == "preview":
            since, until = _period(args, settings, now)
            print(
                render(await compute_digest(runtime.uow, end=until, start=since, options=options))
            )
            return 0
        queued = await send_digest(runtime.uow, runtime.clock, period_end=now, options=options)
        if not queued:
            print("No admins to send the digest to: nothing was queued.")
            return 1
        print(
            f"Digest queued for {queued} admin{'s' if queued != 1 else ''}; "
            "a running `pim-bot serve` delivers it."
        )
        return 0

    if args.digest_command == "preview":
        try:  # bad dates fail before touching the database
            _period(args, settings, datetime.now(ZoneInfo(settings.timezone)))
        except BadArgument as err:
            print(f"pim-bot: {err}", file=sys.stderr)
            return 2
    return await _with_runtime(settings, body, prepare=False)


async def cmd_review(args: argparse.Namespace, settings: Settings) -> int:
    return await _with_runtime(
        settings, lambda runtime: run_review(args, runtime, _operator()), prepare=False
    )


async def cmd_teams(args: argparse.Namespace, settings: Settings) -> int:
    from bot.teams.package import PackageError, build_package

    try:
        data = build_package(
            app_id=args.app_id, website=args.website, privacy=args.privacy_url, terms=args.terms_url
        )
    except PackageError as err:
        print(f"pim-bot: {err}", file=sys.stderr)
        return 2
    Path(args.output).write_bytes(data)
    print(f"Wrote {args.output}: upload it in Teams (Apps → Manage your apps → Upload an app).")
    return 0


async def cmd_people(args: argparse.Namespace, settings: Settings) -> int:
    try:  # a mistyped account fails before touching the database
        account = parse_account(args.account)
    except CommandError as err:
        print(f"pim-bot: {err}", file=sys.stderr)
        return 2

    async def body(runtime: Runtime) -> int:
        print(
            await link_account(
                runtime.uow,
                runtime.clock,
                actor=_operator(),
                user=UserRef("email", args.email.strip().lower()),
                account=account,
                operator=True,
            )
        )
        return 0

    return await _with_runtime(settings, body, prepare=False)


async def cmd_grants_table(args: argparse.Namespace, settings: Settings) -> int:
    return await _with_runtime(
        settings, lambda runtime: cmd_grants(args, settings, runtime), prepare=False
    )


def _operator() -> str:
    """Who ran the CLI, for the audit log (whoever can run it holds the database anyway)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # a container user without a passwd entry
        return "cli"


_COMMANDS: dict[str, Command] = {
    "serve": cmd_serve,
    "console": cmd_console,
    "policy": cmd_policy,
    "db": cmd_db,
    "audit": cmd_audit,
    "digest": cmd_digest,
    "teams": cmd_teams,
    "people": cmd_people,
    "review": cmd_review,
    "grants": cmd_grants_table,
}


async def _settled(command: Awaitable[int]) -> int:
    try:
        return await command
    finally:
        # An SQLite file that cannot be opened leaves aiosqlite's worker thread to stop on
        # its own; if the loop closes first, that thread prints a traceback after our one-line
        # answer. Let it finish while the loop is still open.
        for thread in threading.enumerate():
            if "_connection_worker_thread" in thread.name:
                thread.join(timeout=2)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "doctor":  # it reports a bad configuration in its table
        configure_logging(level=logging.ERROR)
        return asyncio.run(cmd_doctor(args, None))
    try:
        settings = Settings.from_env()
    except ConfigError as err:
        print(f"pim-bot: {err}", file=sys.stderr)
        return 2
    configure_logging(
        level=settings.log_level if args.command == "serve" else logging.WARNING,
        fmt=settings.log_format,
    )
    try:
        return asyncio.run(_settled(_COMMANDS[args.command](args, settings)))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `pim-bot audit export | head`: the reader left, which is no error of ours. Point
        # stdout at nothing so the interpreter's final flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (PimError, OSError, AuditUsageError, AuditKeyError, ConfigError, StartupRefused) as err:
        print(f"pim-bot: {err}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as err:
        print(
            f"pim-bot: a file is not UTF-8 text ({err.reason} at byte {err.start})", file=sys.stderr
        )
        return 2
    except DBAPIError as err:  # an SQLite path that cannot be opened, a PostgreSQL refusal
        print(
            f"pim-bot: database error at {database_place(settings.database_url)}: "
            f"{err.orig or err}",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
