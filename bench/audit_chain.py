"""The audit chain's cost: appending N events one per call vs one append_events batch, in
one transaction, and verifying the chain, each unkeyed and keyed (PIM_AUDIT_KEY).

    python bench/audit_chain.py                      # SQLite file in a temp dir, N=5000
    python bench/audit_chain.py -n 20000 --database-url postgresql://postgres@127.0.0.1:5432/b

Each database is emptied of audit events first: use a scratch database.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete

from storage.audit import AuditKey, NewEvent, append_event, append_events, verify_chain
from storage.db import make_engine
from storage.migrate import upgrade
from storage.models import AuditEvent
from storage.uow import UnitOfWork

AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def events(n: int) -> list[NewEvent]:
    return [
        NewEvent(
            at=AT,
            actor="pim-bot",
            action="role.expired",
            target=f"user{i}@contoso.com/global-admin",
            details={"request": f"R-{i}"},
        )
        for i in range(n)
    ]


async def clear(uow: UnitOfWork, items: list[NewEvent]) -> None:
    async with uow.transaction() as s:
        await s.execute(delete(AuditEvent))


async def singles(uow: UnitOfWork, items: list[NewEvent]) -> None:
    async with uow.transaction() as s:
        for e in items:
            await append_event(
                s, at=e.at, actor=e.actor, action=e.action, target=e.target, details=e.details
            )


async def batch(uow: UnitOfWork, items: list[NewEvent]) -> None:
    async with uow.transaction() as s:
        await append_events(s, items)


async def verify(uow: UnitOfWork, items: list[NewEvent]) -> None:
    async with uow.transaction() as s:
        result = await verify_chain(s)
    assert result.ok and result.checked == len(items), result


Step = Callable[[UnitOfWork, list[NewEvent]], Awaitable[None]]
STEPS: list[tuple[str, Step]] = [
    ("append_event x N, 1 txn", singles),
    ("append_events (one batch)", batch),
    ("verify_chain", verify),
]


async def run(url: str, n: int) -> None:
    engine = make_engine(url)
    await upgrade(engine)
    items = events(n)
    print(f"{'key':<6} {'operation':<28} {'events':>7} {'seconds':>8} {'events/s':>10}")
    for label, key in (("none", None), ("hmac", AuditKey.from_text("bench-key-0123456789"))):
        uow = UnitOfWork(engine, audit_key=key)
        for name, step in STEPS:
            if step is not verify:
                await clear(uow, items)
            start = time.perf_counter()
            await step(uow, items)
            secs = time.perf_counter() - start
            print(f"{label:<6} {name:<28} {n:>7} {secs:>8.3f} {n / secs:>10.0f}")
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        asyncio.run(run(url, args.n))


if __name__ == "__main__":
    main()
