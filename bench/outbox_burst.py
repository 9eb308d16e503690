"""Outbox burst: N "access ended" DMs to N people, queued at once, delivered through the real
Slack transport to the Slack fake with Slack's posting limits on.

    python bench/outbox_burst.py                         # 10,000 DMs, SQLite temp file
    python bench/outbox_burst.py -n 2000 --per-person 3 --concurrency 4 16 64
    python bench/outbox_burst.py --workspace-rate 10     # also a workspace-wide limit
    python bench/outbox_burst.py --database-url postgresql://USER@HOST:PORT/DB

The fake (tests/slackfake) answers 429 + Retry-After beyond --post-rate messages per second
per channel (bursts of --post-burst), and beyond --workspace-rate per second in all if given.
Rows are written straight into the outbox ('*' rows, fanned out by the worker as in
production); the real OutboxWorker and SlackTransport (metadata, pacing, App Home refresh)
deliver them, run_once after run_once as the sweeper would. Reported: time from the first
run_once to every row sent, messages per second, 429s the fake answered, and messages that
reached a person out of the order they were queued in (must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import ClientSession
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import func, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.*

from bot.outbox import OutboxWorker  # noqa: E402
from bot.slack.transport import SlackTransport  # noqa: E402
from cards import views as v  # noqa: E402
from cards.views import Notification  # noqa: E402
from handlers.clock import SystemClock  # noqa: E402
from storage.claims import next_outbox_due  # noqa: E402
from storage.db import make_engine  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.models import OutboxMessage, Principal  # noqa: E402
from storage.uow import UnitOfWork  # noqa: E402
from tests.slackfake import FakeSlackAPI  # noqa: E402


async def queue(uow: UnitOfWork, n: int, per_person: int, run: int) -> None:
    now = datetime.now(UTC)
    async with uow.transaction() as s:
        first = int(await s.scalar(select(func.coalesce(func.max(Principal.id), 0))) or 0) + 1
        await s.execute(
            insert(Principal),
            [
                {
                    "email": f"r{run}u{i}@bench.test",
                    "display_name": f"User {i}",
                    "slack_id": f"U{run}X{i:06d}",
                    "admin": False,
                    "created_at": now,
                }
                for i in range(n)
            ],
        )
        rows = []
        for step in range(per_person):
            kind = v.EXPIRED if step == per_person - 1 else v.ACTIVATED
            for i in range(n):
                note = Notification(kind=kind, headline=f"step {step}: access to Bench Role")
                rows.append(
                    {
                        "created_at": now,
                        "transport": "*",
                        "recipient_id": first + i,
                        "kind": kind,
                        "payload": note.to_dict(),
                        "next_attempt_at": now,
                        "status": "pending",
                        "attempts": 0,
                    }
                )
        for at in range(0, len(rows), 5000):
            await s.execute(insert(OutboxMessage), rows[at : at + 5000])


async def deliver(uow: UnitOfWork, worker: OutboxWorker) -> None:
    while True:
        await worker.run_once()
        async with uow.transaction() as s:
            due = await next_outbox_due(s, transports=["slack"])
        if due is None:
            return
        await asyncio.sleep(max(0.01, min(1.0, (due - datetime.now(UTC)).total_seconds())))


async def sent_rows(uow: UnitOfWork) -> int:
    async with uow.transaction() as s:
        return int(
            await s.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.transport == "slack", OutboxMessage.status == "sent")
            )
            or 0
        )


def out_of_order(fake: FakeSlackAPI) -> int:
    seen: dict[str, int] = {}
    wrong = 0
    for call in fake.calls("chat.postMessage"):
        if not call.ok:
            continue
        step = int(str(call.args.get("text", "")).split("step ")[1].split(":")[0])
        channel = str(call.args["channel"])
        wrong += step < seen.get(channel, -1)
        seen[channel] = step
    return wrong


async def one(
    url: str, n: int, per_person: int, concurrency: int, args: argparse.Namespace, run: int
) -> str:
    engine = make_engine(url)
    uow = UnitOfWork(engine)
    await upgrade(engine)
    before = await sent_rows(uow)
    await queue(uow, n, per_person, run)
    async with FakeSlackAPI(
        post_rate=args.post_rate, post_burst=args.post_burst, workspace_rate=args.workspace_rate
    ) as fake:
        session = ClientSession() if args.keep_alive else None
        client = AsyncWebClient(token="xoxb-bench", base_url=fake.base_url, session=session)
        clock = SystemClock()
        worker = OutboxWorker(
            uow,
            clock,
            [SlackTransport(client, uow, clock)],
            worker=f"bench{run}",
            concurrency=concurrency,
        )
        started = time.perf_counter()
        await deliver(uow, worker)
        took = time.perf_counter() - started
        if session is not None:
            await session.close()
        sent = await sent_rows(uow) - before
        posted = sum(1 for c in fake.calls("chat.postMessage") if c.ok)
        limits = f"{args.post_rate:g}/s/channel, burst {args.post_burst:g}"
        if args.workspace_rate:
            limits += f"; {args.workspace_rate:g}/s workspace"
        row = (
            f"| {uow.dialect} | {n} | {per_person} | {concurrency} | {limits} | {sent} "
            f"| {posted} | {took:.1f}s | {posted / took:.0f} | {fake.rate_limited()} "
            f"| {out_of_order(fake)} |"
        )
    await engine.dispose()
    return row


async def main(args: argparse.Namespace) -> None:
    url = args.database_url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    print(
        "| database | people | messages each | concurrency | fake's limits | rows sent "
        "| posts at the fake | time to all delivered | messages/s | 429s | out of order |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for run, concurrency in enumerate(args.concurrency):
        print(await one(url, args.n, args.per_person, concurrency, args, run), flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database-url", default=None)
    ap.add_argument("-n", type=int, default=10_000, help="people, one DM channel each")
    ap.add_argument("--per-person", type=int, default=1, help="messages to each person")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[64])
    ap.add_argument("--post-rate", type=float, default=1.0)
    ap.add_argument("--post-burst", type=float, default=3.0)
    ap.add_argument("--workspace-rate", type=float, default=None)
    ap.add_argument(
        "--keep-alive",
        action="store_true",
        help="one aiohttp session for all calls (slack_sdk opens one per call)",
    )
    asyncio.run(main(ap.parse_args()))
