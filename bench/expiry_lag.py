"""Expiry lag: how late N activations end, with one or more replicas sweeping one database.

1. Builds N activations through `request_activation` once (timed), each lasting an hour, so
   none can end during the build: one after another, or with `--build-tasks K` K asks in
   flight at once (each still one call of the use case and one transaction of its own; on
   PostgreSQL the round trips of one then overlap the others' work).
2. For each scenario, on its own copy of that database: places the ends only now, from
   `--lead` seconds ahead, spread evenly over one minute or all at one instant (each with
   its warning 1 s before), then starts the scenario's replicas: processes, each a real
   pim-bot Runtime (APScheduler sweeper, durable timers, outbox worker without transports)
   on the wall clock, watched from this process.

The replicas deliver the outbox through the real Slack transport to the Slack fake
(tests/slackfake), run by this process with Slack's posting limit: 1 message per second per
channel, bursts of 3 (`--post-rate`, `--post-burst`; `--workspace-rate` adds a limit on all
posts). Each person is a DM channel of their own, so the per-channel limit does not bind;
the worker's concurrency (`--outbox-concurrency`, PIM_OUTBOX_CONCURRENCY) and the
transport's pacing do.

Reported per scenario: the lag from each end to (a) the expiry time its batch recorded and
(b) the moment this process first saw it committed (polled every 25 ms); when all were
committed; that each was expired exactly once with its "access ended" outbox row; the lag
from each end to its "access ended" DM reaching the fake, and when the last one did; the
latency of a user command (`roles`, which takes SQLite's write lock like any command) run
every 250 ms during the sweep; and the largest peak RSS among the replicas.

    python bench/expiry_lag.py -n 10000 --scenarios even:1,even:2,instant:1,instant:2
    python bench/expiry_lag.py -n 10000 --postgres --scenarios even:1,even:2,instant:1,instant:2
    python bench/expiry_lag.py -n 10000 --postgres --build-tasks 4
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import ClientSession
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from bot.config import Settings
from bot.runtime import Runtime
from bot.slack.transport import SlackTransport
from handlers.activation import ActivationAsk, request_activation
from handlers.approval import decide
from handlers.chat import run_text
from handlers.clock import SystemClock
from handlers.settings import RoleSettings
from storage.db import normalize_url
from storage.models import AuditEvent, OutboxMessage, Principal, Role, Schedule, Timer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.slackfake
from tests.slackfake import FakeSlackAPI, dm_id  # noqa: E402

DURATION = timedelta(hours=1)
WARNING = timedelta(seconds=1)
PROBE = "probe@bench.test"
APPROVER = "approver@bench.test"


def _settings(url: str, sweep: float) -> Settings:
    return Settings.from_env({"DATABASE_URL": url, "PIM_SWEEP_SECONDS": str(sweep)})


async def setup(runtime: Runtime, n: int, approval: bool = False) -> None:
    """The cast, inserted directly (not measured): n people eligible for one role, a prober,
    and the role's approver when asks need approval."""
    now = datetime.now(UTC) - timedelta(days=1)
    approve = {"require_approval": True, "approvers": [APPROVER]} if approval else {}
    settings = RoleSettings.from_mapping(
        {"require_justification": False, "max_duration": "2h", "expiry_warning": "1s", **approve}
    ).to_mapping()
    async with runtime.uow.transaction() as s:
        s.add(Role(id="bench", display_name="Bench Role", created_at=now, settings=settings))
        await s.execute(
            insert(Principal),
            [
                {
                    "email": f"u{i}@bench.test",
                    "display_name": f"User {i}",
                    "slack_id": f"U{i:06d}",
                    "created_at": now,
                }
                for i in range(n)
            ]
            + [{"email": PROBE, "display_name": "Probe", "created_at": now}]
            + [{"email": APPROVER, "display_name": "Approver", "created_at": now}],
        )
        ids = (await s.scalars(select(Principal.id).where(Principal.email != APPROVER))).all()
        await s.execute(
            insert(Schedule),
            [
                {
                    "principal_id": pid,
                    "role_id": "bench",
                    "kind": "eligible",
                    "member_type": "Assigned",
                    "state": "Active",
                    "start_at": now,
                    "created_at": now,
                }
                for pid in ids
            ],
        )


async def build(
    runtime: Runtime, n: int, tasks: int = 1, approval: bool = False
) -> tuple[float, float]:
    """Seconds of wall clock and of this process's CPU (SQLite's included, PostgreSQL's
    server not) to ask for n activations: `tasks` asking at once (1: one after another),
    each ask its own call of the use case and its own transaction; with `approval`, each ask
    is then approved (`decide`, a transaction of its own) and that provisions it."""
    clock, t, cpu = SystemClock(), time.perf_counter(), time.process_time()
    people = iter(range(n))

    async def asker() -> None:
        for i in people:
            view = await request_activation(
                runtime.uow,
                clock,
                actor=f"u{i}@bench.test",
                ask=ActivationAsk(role="bench", duration=DURATION),
            )
            if approval:
                await decide(
                    runtime.uow,
                    clock,
                    actor=APPROVER,
                    request_id=view.id,
                    approve=True,
                    justification="bench",
                )

    await asyncio.gather(*(asker() for _ in range(tasks)))
    return time.perf_counter() - t, time.process_time() - cpu


async def place_ends(runtime: Runtime, ends: list[datetime]) -> dict[int, datetime]:
    """Move each activation's end (and its expiry and warning timers) to its planned time."""
    async with runtime.uow.transaction() as s:
        ids = (
            await s.scalars(
                select(Schedule.id).where(Schedule.kind == "active").order_by(Schedule.id)
            )
        ).all()
        end_of = dict(zip(ids, ends, strict=True))
        # ORM bulk UPDATE by primary key: one executemany per table
        await s.execute(update(Schedule), [{"id": sid, "end_at": e} for sid, e in end_of.items()])
        timers = (
            await s.execute(
                select(Timer.id, Timer.subject_id, Timer.kind).where(
                    Timer.kind.in_(["expire", "warn"])
                )
            )
        ).all()
        await s.execute(
            update(Timer),
            [
                {"id": tid, "due_at": end_of[sid] - (WARNING if kind == "warn" else timedelta(0))}
                for tid, sid, kind in timers
            ],
        )
        # The build's "is active" DMs went out long ago: only what the sweep queues is sent.
        await s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status == "pending")
            .values(status="sent", sent_at=datetime.now(UTC))
            .execution_options(synchronize_session=False)
        )
    return end_of


async def watch(
    runtime: Runtime,
    end_of: dict[int, datetime],
    deadline: datetime,
    probes: list[tuple[datetime, float]],
) -> dict[int, datetime]:
    """Poll for committed expiries; run a user command every 250 ms meanwhile."""
    seen: dict[int, datetime] = {}
    stop = asyncio.Event()

    async def probe() -> None:
        clock = SystemClock()
        while not stop.is_set():
            t = time.perf_counter()
            try:
                await run_text(
                    runtime.uow, clock, commands=runtime.commands, actor=PROBE, text="roles"
                )
                probes.append((datetime.now(UTC), time.perf_counter() - t))
            except OperationalError:  # "database is locked": the user got no answer
                probes.append((datetime.now(UTC), -1.0))
            await asyncio.sleep(0.25)

    prober = asyncio.create_task(probe())
    # A plain engine: on SQLite a reader that never takes the write lock (storage.db makes
    # every transaction of the bot's own engine BEGIN IMMEDIATE), so watching changes nothing.
    reader = create_async_engine(
        normalize_url(runtime.uow.engine.url.render_as_string(hide_password=False))
    )
    while len(seen) < len(end_of) and datetime.now(UTC) < deadline:
        async with reader.connect() as c:
            ids = (
                (
                    await c.execute(
                        select(Schedule.id).where(
                            Schedule.kind == "active", Schedule.state == "Expired"
                        )
                    )
                )
                .scalars()
                .all()
            )
        now = datetime.now(UTC)
        for sid in ids:
            seen.setdefault(sid, now)
        await asyncio.sleep(0.025)
    stop.set()
    await prober
    await reader.dispose()
    return seen


async def spawn(
    url: str, args: argparse.Namespace, slack_url: str, replicas: int
) -> list[asyncio.subprocess.Process]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if args.outbox_concurrency:
        env["PIM_OUTBOX_CONCURRENCY"] = str(args.outbox_concurrency)
    extra = ["--keep-alive"] if args.keep_alive else []
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--worker",
            "--database-url",
            url,
            "--sweep-seconds",
            str(args.sweep_seconds),
            "--slack-url",
            slack_url,
            *extra,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        for _ in range(replicas)
    ]
    for p in procs:
        assert p.stdout is not None
        await p.stdout.readline()  # "ready"
    return procs


async def stop(procs: list[asyncio.subprocess.Process]) -> float:
    """Stop the replicas; return the largest peak RSS among them, in MB."""
    for p in procs:
        p.send_signal(signal.SIGTERM)
    outs = await asyncio.gather(*(p.communicate() for p in procs))
    return max(float(out.split()[-1]) for out, _ in outs) / 1024


async def worker(url: str, sweep: float, slack_url: str, keep_alive: bool) -> None:
    """A replica: sweeper and outbox worker, delivering through the real Slack transport as
    `serve` builds it (bot.slack.app), to the fake at slack_url."""
    runtime = Runtime.build(_settings(url, sweep))
    session = ClientSession() if keep_alive else None
    client = AsyncWebClient(token="xoxb-bench", base_url=slack_url, session=session)
    runtime.start_background([SlackTransport(client, runtime.uow, runtime.clock)])
    done = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, done.set)
    print("ready", flush=True)
    await done.wait()
    await runtime.close()
    if session is not None:
        await session.close()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)


async def delivered(
    fake: FakeSlackAPI, channel_of: dict[int, str], end_of: dict[int, datetime], deadline: datetime
) -> dict[int, datetime]:
    """When each "access ended" DM reached the fake (wall clock), waiting up to deadline."""
    by_channel = {ch: sid for sid, ch in channel_of.items()}
    got: dict[int, datetime] = {}
    seen_calls = 0
    while True:
        calls = fake.calls("chat.postMessage")
        wall, mono = datetime.now(UTC), time.monotonic()
        for call in calls[seen_calls:]:
            if call.ok and "has ended" in str(call.args.get("text", "")):
                sid = by_channel.get(dm_id(str(call.args.get("channel", ""))))
                if sid is not None:
                    got.setdefault(sid, wall - timedelta(seconds=mono - call.at))
        seen_calls = len(calls)
        if len(got) >= len(end_of) or datetime.now(UTC) >= deadline:
            return got
        await asyncio.sleep(0.25)


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p * len(values)))] if values else float("nan")


async def build_base(url: str, n: int, args: argparse.Namespace) -> tuple[float, float]:
    runtime = Runtime.build(_settings(url, 15))
    await runtime.prepare()
    await setup(runtime, n, args.approval)
    built = await build(runtime, n, args.build_tasks, args.approval)
    await runtime.close()
    return built


async def measure(
    url: str, n: int, same_instant: bool, replicas: int, args: argparse.Namespace
) -> str:
    runtime = Runtime.build(_settings(url, args.sweep_seconds))
    first = datetime.now(UTC) + timedelta(seconds=args.lead)
    ends = [
        first + (timedelta(0) if same_instant else timedelta(seconds=60 * i / n)) for i in range(n)
    ]
    end_of = await place_ends(runtime, ends)
    async with runtime.uow.transaction() as s:
        channel_of = {
            sid: dm_id(slack)
            for sid, slack in (
                await s.execute(
                    select(Schedule.id, Principal.slack_id)
                    .join(Principal)
                    .where(Schedule.kind == "active")
                )
            ).all()
        }
    async with FakeSlackAPI(
        post_rate=args.post_rate, post_burst=args.post_burst, workspace_rate=args.workspace_rate
    ) as fake:
        procs = await spawn(url, args, fake.base_url, replicas)
        probes: list[tuple[datetime, float]] = []
        seen = await watch(runtime, end_of, max(ends) + timedelta(seconds=180), probes)
        got = await delivered(
            fake, channel_of, end_of, max(ends) + timedelta(seconds=args.delivery_timeout)
        )
        rss_mb = await stop(procs)
        limited = fake.rate_limited()
    async with runtime.uow.transaction() as s:
        recorded = (
            await s.execute(
                select(Schedule.end_at, Schedule.ended_at).where(
                    Schedule.kind == "active", Schedule.ended_at.is_not(None)
                )
            )
        ).all()
        events = await s.scalar(select(func.count()).where(AuditEvent.action == "active.expired"))
        rows = await s.scalar(
            select(func.count()).where(
                OutboxMessage.kind == "expired", OutboxMessage.transport == "*"
            )
        )
    await runtime.close()
    rec = sorted((ended - end).total_seconds() for end, ended in recorded)
    vis = sorted((seen[sid] - end_of[sid]).total_seconds() for sid in seen)
    dlv = sorted((got[sid] - end_of[sid]).total_seconds() for sid in got)
    last_seen = max(seen.values(), default=first)
    last_dlv = max(got.values(), default=first)
    window = sorted(lat for at, lat in probes if first <= at <= last_seen)
    failed = sum(1 for at, lat in probes if first <= at <= last_seen and lat < 0)
    return (
        f"| {runtime.uow.dialect} | {replicas} | "
        f"{'one instant' if same_instant else 'even over 1 min'} | {events}/{n} / {rows} | "
        f"{pct(rec, 0.5):.3f}s | {pct(rec, 0.95):.3f}s | {pct(rec, 0.99):.3f}s | "
        f"{rec[-1] if rec else float('nan'):.3f}s | {pct(vis, 0.99):.3f}s / "
        f"{vis[-1] if vis else float('nan'):.3f}s | "
        f"{(last_seen - max(ends)).total_seconds():.2f}s | "
        f"{len(dlv)}/{n}: {pct(dlv, 0.5):.1f}s / {pct(dlv, 0.95):.1f}s / {pct(dlv, 0.99):.1f}s / "
        f"{dlv[-1] if dlv else float('nan'):.1f}s | "
        f"{(last_dlv - max(ends)).total_seconds():.1f}s | {limited} | "
        f"{pct(window, 0.99):.3f}s / {max(window, default=float('nan')):.3f}s"
        f"{f' ({failed} failed)' if failed else ''} | {rss_mb:.0f} MB |"
    )


HEADER = (
    "| db | replicas | ends | expired once / outbox rows | lag p50 | p95 | p99 | max "
    "| committed lag p99 / max | all committed after last end "
    "| delivered: n, lag p50 / p95 / p99 / max | all delivered after last end | 429s "
    "| command p99 / max during sweep | peak RSS per replica |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


async def run(
    fresh: Callable[[str], str], scenarios: list[tuple[bool, int]], args: argparse.Namespace
) -> None:
    """Build once; measure each scenario on its own copy of the built database."""
    n = args.n
    built, cpu = await build_base(fresh(""), n, args)
    how = (
        "one after another"
        if args.build_tasks == 1
        else f"{args.build_tasks} asking at once, each ask its own transaction"
    )
    path = "request_activation, each approved by decide" if args.approval else "request_activation"
    print(
        f"built {n} activations through {path} ({how}) in {built:.1f}s "
        f"({1000 * built / n:.1f} ms each, {1000 * cpu / n:.1f} ms of CPU in this process); "
        "ends are placed after the build",
        flush=True,
    )
    lines = []
    for i, (same_instant, replicas) in enumerate(scenarios):
        lines.append(await measure(fresh(f"s{i}"), n, same_instant, replicas, args))
        print("\n".join([HEADER, *lines]), flush=True)


def sqlite_copies(base: Path) -> Callable[[str], str]:
    def fresh(name: str) -> str:
        if name:
            copy = base.with_name(f"{name}.db")
            shutil.copy(base, copy)
            return f"sqlite:///{copy}"
        return f"sqlite:///{base}"

    return fresh


def parse_scenarios(text: str) -> list[tuple[bool, int]]:
    """ "even:1,even:2,instant:1" -> [(False, 1), (False, 2), (True, 1)]"""
    out = []
    for item in text.split(","):
        mode, _, replicas = item.partition(":")
        if mode not in ("even", "instant"):
            raise SystemExit(f"unknown mode {mode!r} (even or instant)")
        out.append((mode == "instant", int(replicas or 1)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--postgres",
        action="store_true",
        help="a throwaway PostgreSQL server (tests/pgserver.py); default SQLite",
    )
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument(
        "--scenarios",
        default="even:1",
        help="ends:replicas, comma-separated; ends is even (over one minute) or "
        "instant (default even:1)",
    )
    ap.add_argument(
        "--build-tasks",
        type=int,
        default=1,
        help="asks in flight at once while building (default 1: one after another)",
    )
    ap.add_argument(
        "--approval",
        action="store_true",
        help="the role needs approval: every ask is approved (decide) while building",
    )
    ap.add_argument(
        "--lead", type=float, default=10.0, help="seconds from placing the ends to the first end"
    )
    ap.add_argument("--sweep-seconds", type=float, default=15.0)
    ap.add_argument(
        "--post-rate",
        type=float,
        default=1.0,
        help="the fake's chat.postMessage limit per channel, per second",
    )
    ap.add_argument("--post-burst", type=float, default=3.0)
    ap.add_argument(
        "--workspace-rate",
        type=float,
        default=None,
        help="also a limit on all posts, per second (default none)",
    )
    ap.add_argument(
        "--outbox-concurrency",
        type=int,
        default=None,
        help="PIM_OUTBOX_CONCURRENCY for the replicas (default: its default)",
    )
    ap.add_argument(
        "--keep-alive",
        action="store_true",
        help="one aiohttp session per replica for all Slack calls",
    )
    ap.add_argument(
        "--delivery-timeout",
        type=float,
        default=600.0,
        help="seconds after the last end to wait for the DMs",
    )
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--database-url", help=argparse.SUPPRESS)
    ap.add_argument("--slack-url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        asyncio.run(worker(args.database_url, args.sweep_seconds, args.slack_url, args.keep_alive))
        return
    scenarios = parse_scenarios(args.scenarios)
    if args.postgres:
        from tests.pgserver import PostgresServer

        with PostgresServer() as pg:

            def fresh(name: str) -> str:
                return pg.create_database(name or "base", template="base" if name else None)

            asyncio.run(run(fresh, scenarios, args))
        return
    fresh = sqlite_copies(Path(tempfile.mkdtemp()) / "base.db")
    asyncio.run(run(fresh, scenarios, args))


if __name__ == "__main__":
    main()
