"""Grants: N activations provisioned, then revoked, through a webhook receiver that allows
20 requests a second (429 + Retry-After beyond that, like Graph's throttling).

1. Inserts N people eligible for one role whose `grant:` is the receiver (not measured), and
   activates each through `request_activation` (timed, shown for scale).
2. Grant: the real grant worker (claims, retries, Retry-After) with the real webhook provider
   (signed per Standard Webhooks, verified by the receiver) until every grant is Provisioned.
3. Revoke: every activation's expiry timer is made due at once and run in batches (the
   set-based expiry), and the worker runs until every grant is Revoked.

The floor each way is N / rate seconds (1,000 / 20 = 50 s). "Twice" counts events the
receiver acted on more than once (distinct webhook ids per grant and event): it must be 0.

    python bench/grants.py                       # 1,000 activations, SQLite
    python bench/grants.py -n 200 --rate 20
    python bench/grants.py --database-url postgresql://…/empty_db
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select, update

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.grants_worker import GrantsWorker  # noqa: E402
from bot.providers.webhook import WebhookProvider  # noqa: E402
from handlers.activation import ActivationAsk, request_activation  # noqa: E402
from handlers.clock import SystemClock  # noqa: E402
from handlers.settings import RoleSettings  # noqa: E402
from handlers.timers import lifecycle_actions, run_due_timers  # noqa: E402
from storage.db import make_engine  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.models import Grant, Principal, Role, Schedule, Timer  # noqa: E402
from storage.uow import UnitOfWork  # noqa: E402
from tests.webhookfake import SECRET, WebhookReceiver  # noqa: E402


async def setup(uow: UnitOfWork, n: int, url: str) -> None:
    now = datetime.now(UTC) - timedelta(days=1)
    settings = RoleSettings.from_mapping(
        {"require_justification": False, "max_duration": "2h"}
    ).to_mapping()
    async with uow.transaction() as s:
        s.add(
            Role(
                id="bench",
                display_name="Bench Role",
                created_at=now,
                settings=settings,
                grant_targets=[{"webhook": url}],
            )
        )
        await s.execute(
            insert(Principal),
            [
                {"email": f"u{i}@bench.test", "display_name": f"User {i}", "created_at": now}
                for i in range(n)
            ],
        )
        ids = (await s.scalars(select(Principal.id))).all()
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


async def activate(uow: UnitOfWork, n: int) -> float:
    clock, started = SystemClock(), time.perf_counter()
    for i in range(n):
        await request_activation(
            uow,
            clock,
            actor=f"u{i}@bench.test",
            ask=ActivationAsk(role="bench", duration=timedelta(hours=1)),
        )
    return time.perf_counter() - started


async def count(uow: UnitOfWork, status: str) -> int:
    async with uow.read() as s:
        return int(
            await s.scalar(select(func.count()).select_from(Grant).where(Grant.status == status))
            or 0
        )


async def until_all(uow: UnitOfWork, status: str, n: int, worker: GrantsWorker) -> float:
    started = time.perf_counter()
    worker.poke()
    while await count(uow, status) < n:
        await asyncio.sleep(0.1)
    return time.perf_counter() - started


async def expire_all(uow: UnitOfWork) -> None:
    now = datetime.now(UTC)
    async with uow.transaction() as s:
        await s.execute(update(Timer).where(Timer.kind == "expire").values(due_at=now))
    await run_due_timers(uow, SystemClock(), worker="bench", actions=lifecycle_actions())


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{tmp}/grants.db"
        engine = make_engine(url)
        await upgrade(engine)
        uow = UnitOfWork(engine)
        async with WebhookReceiver(per_second=args.rate) as hook:
            await setup(uow, args.n, hook.url)
            built = await activate(uow, args.n)
            provider = WebhookProvider(secret=SECRET)
            worker = GrantsWorker(
                uow,
                SystemClock(),
                {"webhook": provider},
                worker="bench",
                concurrency=args.concurrency,
            )
            worker.start(poll_seconds=0.2)
            granted = await until_all(uow, "Provisioned", args.n, worker)
            throttled_grant = hook.answers["429"]
            await expire_all(uow)
            revoked = await until_all(uow, "Revoked", args.n, worker)
            await worker.stop()
            await provider.close()
            effects = hook.effects()
        await engine.dispose()
    floor = args.n / args.rate
    twice = sum(1 for c in effects.values() if c > 1)
    kinds = {
        kind: sum(1 for (_, k) in effects if k == kind)
        for kind in ("grant.activated", "grant.revoked")
    }
    print(
        f"\ngrants bench: {args.n} activations ({built:.1f} s to create them) on "
        f"{url.split(':')[0]}, receiver allows {args.rate:g} requests/s, worker "
        f"concurrency {args.concurrency}"
    )
    print(
        f"{'direction':<10} {'events':>7} {'seconds':>8} {'floor s':>8} {'x floor':>8} "
        f"{'429s':>6} {'twice':>6}"
    )
    rows = [
        ("grant", kinds["grant.activated"], granted, throttled_grant),
        ("revoke", kinds["grant.revoked"], revoked, hook.answers["429"] - throttled_grant),
    ]
    for name, events, seconds, throttled in rows:
        print(
            f"{name:<10} {events:>7} {seconds:>8.1f} {floor:>8.1f} {seconds / floor:>8.2f} "
            f"{throttled:>6} {twice:>6}"
        )
    print(
        f"bad signatures: {hook.bad_signatures}; resent with the same webhook id: {hook.repeats()}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database-url")
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main(parser.parse_args()))
