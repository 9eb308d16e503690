"""Directory sync: how long N people from the directory take to upsert, and a sync that finds
nothing new, and one where a tenth of them left. The people come from an in-process source
(the database is what is measured; Graph and Slack paging are the readers' own cost).

    python bench/directory_sync.py --sizes 10000              # SQLite
    python bench/directory_sync.py --sizes 10000 --postgres    # also a throwaway PostgreSQL
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from handlers.clock import FixedClock  # noqa: E402
from handlers.directory_sync import sync_directory  # noqa: E402
from handlers.grants.provider import Person  # noqa: E402
from handlers.policy import apply_policy  # noqa: E402
from storage.db import make_engine  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.uow import UnitOfWork  # noqa: E402

GROUP = "0c1c6a6e-6a55-4a3e-9f5e-8b1f6b8d2a10"


class Source:
    def __init__(self, n: int) -> None:
        self.people = [
            Person(email=f"u{i}@bench.test", name=f"User {i}", teams_id=f"oid-{i}")
            for i in range(n)
        ]

    async def people_(self) -> list[Person]:
        return self.people


async def run(url: str, n: int) -> tuple[float, float, float]:
    engine = make_engine(url)
    await upgrade(engine)
    uow, clock = UnitOfWork(engine), FixedClock(datetime(2026, 11, 30, 12, tzinfo=UTC))
    source = Source(n)

    class Reader:
        async def people(self) -> list[Person]:
            return await source.people_()

    try:
        await apply_policy(uow, clock, text=f"directory: [{{entra_group: {GROUP}}}]")
        times = []
        for step in ("first", "again", "left"):
            if step == "left":
                source.people = source.people[: n - n // 10]
            started = time.perf_counter()
            report = await sync_directory(uow, clock, readers=lambda kind, ref: Reader())
            times.append(time.perf_counter() - started)
            expected = {"first": (n, 0), "again": (0, 0), "left": (0, n // 10)}[step]
            assert (report.created, report.left) == expected, (step, report)
        return times[0], times[1], times[2]
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    print(f"{'people':>8}  {'database':<10} {'first s':>8} {'unchanged s':>11} {'10% left s':>10}")

    def report(n: int, name: str, url: str) -> None:
        first, again, left = asyncio.run(run(url, n))
        print(f"{n:>8}  {name:<10} {first:>8.1f} {again:>11.1f} {left:>10.1f}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            report(n, "sqlite", f"sqlite+aiosqlite:///{tmp}/bench-{n}.db")
    if args.postgres:
        from tests.pgserver import PostgresServer

        with PostgresServer() as server:
            for n in args.sizes:
                report(n, "postgresql", server.create_database(f"bench_{uuid.uuid4().hex}"))


if __name__ == "__main__":
    main()
