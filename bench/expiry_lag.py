"""Expiry lag: how long after its end time an activation is recorded as expired.

Builds N activations whose ends fall within one minute (spread evenly, or all at the same
instant with --same-instant), runs the real sweeper (APScheduler + durable timers) on the
wall clock, and prints the distribution of (expired record time - end time).

    python bench/expiry_lag.py                       # SQLite file in a temp dir
    python bench/expiry_lag.py --database-url postgresql://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from bot.config import Settings
from bot.runtime import Runtime
from handlers.activation import ActivationAsk, request_activation
from handlers.assignment import grant_schedule
from handlers.clock import FixedClock
from handlers.settings import RoleSettings
from storage.models import Principal, Role, Schedule

DURATION = timedelta(minutes=10)


async def build(runtime: Runtime, n: int, ends: list[datetime]) -> None:
    uow = runtime.uow
    setup_clock = FixedClock(ends[0] - DURATION - timedelta(minutes=1))
    async with uow.transaction() as s:
        role = Role(id="bench", display_name="Bench Role", created_at=setup_clock.now(),
                    settings=RoleSettings.from_mapping(
                        {"require_justification": False, "expiry_warning": "1s"}).to_mapping())
        s.add(role)
        for i in range(n):
            p = Principal(email=f"u{i}@bench.test", display_name=f"User {i}",
                          created_at=setup_clock.now())
            s.add(p)
            await s.flush()
            await grant_schedule(s, actor="bench", principal=p, role=role, kind="eligible",
                                 end=None, now=setup_clock.now())
    for i, end in enumerate(ends):
        clock = FixedClock(end - DURATION)
        await request_activation(uow, clock, actor=f"u{i}@bench.test",
                                 ask=ActivationAsk(role="bench", duration=DURATION))


async def run(url: str, n: int, same_instant: bool, sweep: float) -> None:
    settings = Settings.from_env({"DATABASE_URL": url, "PIM_SWEEP_SECONDS": str(sweep)})
    runtime = Runtime.build(settings)
    await runtime.prepare()
    minute = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
    ends = [minute + (timedelta(0) if same_instant else timedelta(seconds=60 * i / n))
            for i in range(n)]
    t = time.perf_counter()
    await build(runtime, n, ends)
    print(f"built {n} activations in {time.perf_counter() - t:.1f}s; "
          f"ends from {ends[0]:%H:%M:%S} to {ends[-1]:%H:%M:%S} UTC")
    runtime.start_background([])
    deadline = ends[-1] + timedelta(seconds=120)
    all_done_at = None
    while datetime.now(UTC) < deadline:
        async with runtime.uow.transaction() as s:
            left = await s.scalar(select(func.count()).select_from(Schedule).where(
                Schedule.kind == "active", Schedule.state == "Active"))
        if not left and datetime.now(UTC) > ends[-1]:
            all_done_at = datetime.now(UTC)
            break
        await asyncio.sleep(0.05)
    async with runtime.uow.transaction() as s:
        rows = (await s.execute(select(Schedule.end_at, Schedule.ended_at).where(
            Schedule.kind == "active"))).all()
    await runtime.close()
    lags = sorted((ended - end).total_seconds() for end, ended in rows if ended is not None)
    missing = len(rows) - len(lags)

    def pct(p: float) -> float:
        return lags[min(len(lags) - 1, int(p * len(lags)))]

    print()
    # ended_at is stamped when each expiry runs; its batch commits a little later, so the
    # last column is when the bench (polling every 50ms) saw no active activation left.
    visible = (all_done_at - ends[-1]).total_seconds() if all_done_at else float("nan")
    print("| database | activations | ends | sweep | expired | p50 lag | p95 lag | p99 lag "
          "| max lag | all committed after last end |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {runtime.uow.dialect} | {n} | {'same instant' if same_instant else 'spread over 1 min'}"
          f" | {sweep:g}s | {len(lags)} (missing {missing}) | {statistics.median(lags):.3f}s |"
          f" {pct(0.95):.3f}s | {pct(0.99):.3f}s | {lags[-1]:.3f}s | {visible:.2f}s |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database-url", default=None)
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--same-instant", action="store_true")
    ap.add_argument("--sweep-seconds", type=float, default=15.0)
    args = ap.parse_args()
    url = args.database_url
    if url is None:
        url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    asyncio.run(run(url, args.n, args.same_instant, args.sweep_seconds))


if __name__ == "__main__":
    main()
