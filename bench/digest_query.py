"""Digest query time and memory on a large PostgreSQL history.

Builds, with INSERT ... SELECT generate_series (no row passes through Python), 100,000
principals, 200 roles, ~300,000 schedules, 200,000 requests with their approval steps and
1,000,000 audit events over 8 weeks; then times `compute_digest` (3 runs: min and median,
with the time of each query) and its memory (tracemalloc peak, and the growth of the
process's peak RSS). Prints markdown tables.

    python bench/digest_query.py                        # a throwaway server (tests/pgserver.py)
    python bench/digest_query.py --database-url postgresql://postgres@127.0.0.1:5432/empty_db
    python bench/digest_query.py --with-indexes         # then again with candidate indexes
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import inspect
import resource
import statistics
import sys
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

from handlers.digest import alerts  # noqa: E402
from handlers.digest import queries as digest_sql  # noqa: E402
from handlers.digest.report import DigestOptions, compute_digest  # noqa: E402
from storage.db import make_engine  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.uow import UnitOfWork  # noqa: E402

END = datetime(2026, 12, 7, 8, tzinfo=UTC)  # Monday 09:00 Europe/Berlin
WEEKS = 8
OPTIONS = DigestOptions(timezone="Europe/Berlin")

# Run in order; :end, :w0 (END - 8 weeks), :np (principals), :nr (requests), :na (audit).
BUILD = {
    "principals": """
        INSERT INTO principals (id, email, display_name, admin, from_policy, created_at)
        SELECT g, 'user' || g || '@bench.test', 'User ' || g, g <= 20, false,
               :w0 - interval '90 days'
        FROM generate_series(1, :np) g""",
    "roles": """
        INSERT INTO roles (id, display_name, description, settings, from_policy, created_at)
        SELECT 'role-' || g, 'Role ' || g, '',
               (CASE g % 4 WHEN 0 THEN '{"require_approval": true}'
                           WHEN 1 THEN '{"require_justification": false}'
                           ELSE '{}' END)::json,
               false, :w0 - interval '90 days'
        FROM generate_series(1, 200) g""",
    # Principal p is eligible for role p % 200 + 1 and asks for that role; roles whose
    # number is divisible by 4 need approval. Approver speed depends on the approver.
    "schedule_requests": """
        INSERT INTO schedule_requests (id, short_id, action, status, kind, principal_id,
            role_id, created_by_id, justification, start_at, duration_seconds, created_at,
            decided_at, completed_at, approval_deadline)
        SELECT g, 'B-' || g, 'selfActivate', status, 'active', p, 'role-' || (p % 200 + 1), p,
               'bench', created, 3600 * (1 + floor(r2 * 8)::int), created,
               CASE status WHEN 'TimedOut' THEN created + interval '24 hours'
                           WHEN 'Canceled' THEN created + r3 * interval '1 hour'
                           WHEN 'Provisioned' THEN CASE WHEN approval THEN decided END
                           ELSE decided END,
               CASE WHEN status = 'Provisioned' AND NOT approval THEN created
                    WHEN status IN ('Provisioned', 'Denied') THEN decided
                    WHEN status = 'TimedOut' THEN created + interval '24 hours'
                    ELSE created + r3 * interval '1 hour' END,
               CASE WHEN approval THEN created + interval '24 hours' END
        FROM (
            SELECT g, p, created, approval, r2, r3,
                   created + r3 * ((g % 20) % 5 + 1) * interval '2 hours' AS decided,
                   CASE WHEN NOT approval THEN 'Provisioned'
                        WHEN r1 < 0.75 THEN 'Provisioned' WHEN r1 < 0.87 THEN 'Denied'
                        WHEN r1 < 0.95 THEN 'TimedOut' ELSE 'Canceled' END AS status
            FROM (
                SELECT g, (g * 7919) % :np + 1 AS p, random() AS r1, random() AS r2,
                       random() AS r3, :w0 + random() * interval '56 days' AS created,
                       ((g * 7919) % :np + 1) % 200 % 4 = 3 AS approval
                FROM generate_series(1, :nr) g
            ) raw
        ) s""",
    "approval_steps": """
        INSERT INTO approval_steps (request_id, reviewer_id, decision, justification,
                                    decided_at)
        SELECT id, id % 20 + 1, CASE status WHEN 'Denied' THEN 'Deny' ELSE 'Approve' END,
               'bench', decided_at
        FROM schedule_requests
        WHERE approval_deadline IS NOT NULL AND status IN ('Provisioned', 'Denied')""",
    "schedules (eligible)": """
        INSERT INTO schedules (principal_id, role_id, kind, member_type, state, start_at,
                               end_at, from_policy, created_at, ended_at)
        SELECT p, 'role-' || (p % 200 + 1), 'eligible', 'Assigned',
               CASE WHEN ends IS NULL OR ends > :end THEN 'Active' ELSE 'Expired' END,
               created, ends, false, created, CASE WHEN ends <= :end THEN ends END
        FROM (
            SELECT p, created,
                   CASE WHEN random() < 0.3 THEN created + (30 + random() * 170) * interval '1 day'
                   END AS ends
            FROM (SELECT p, :w0 - interval '30 days' + random() * interval '86 days' AS created
                  FROM generate_series(1, :np) p) c
        ) s""",
    "schedules (assigned active)": """
        INSERT INTO schedules (principal_id, role_id, kind, member_type, state, start_at,
                               end_at, from_policy, created_at, ended_at)
        SELECT p, 'role-' || (g % 200 + 1), 'active', 'Assigned',
               CASE WHEN ends IS NULL OR ends > :end THEN 'Active' ELSE 'Expired' END,
               created, ends, false, created, CASE WHEN ends <= :end THEN ends END
        FROM (
            SELECT g, (g * 31) % :np + 1 AS p, created,
                   CASE WHEN random() < 0.5 THEN created + (1 + random() * 60) * interval '1 day'
                   END AS ends
            FROM (SELECT g, :w0 - interval '30 days' + random() * interval '86 days' AS created
                  FROM generate_series(1, 20000) g) c
        ) s""",
    "schedules (activations)": """
        INSERT INTO schedules (principal_id, role_id, kind, member_type, state, start_at,
                               end_at, request_id, from_policy, created_at, ended_at)
        SELECT principal_id, role_id, 'active', 'Activated',
               CASE WHEN ends > :end THEN 'Active' WHEN early THEN 'Removed'
                    ELSE 'Expired' END,
               starts, ends, id, false, starts,
               CASE WHEN ends > :end THEN NULL
                    WHEN early THEN starts + random() * (ends - starts)
                    ELSE ends + random() * interval '5 seconds' END
        FROM (
            SELECT id, principal_id, role_id, completed_at AS starts,
                   completed_at + duration_seconds * interval '1 second' AS ends,
                   random() < 0.1 AS early
            FROM schedule_requests WHERE status = 'Provisioned'
        ) s""",
    "audit_events": """
        INSERT INTO audit_events (id, at, actor, action, target, details, prev_hash, hash)
        SELECT g, :w0 + (g::float8 / :na) * interval '56 days',
               'user' || (g % :np + 1) || '@bench.test',
               (ARRAY['request.created', 'role.activated', 'active.expired',
                      'request.approved', 'access.expiry_warned'])[g % 5 + 1],
               'user' || (g % :np + 1) || '@bench.test/role-' || (g % 200 + 1),
               ('{"request": "B-' || g || '"}')::json, md5((g - 1)::text), md5(g::text)
        FROM generate_series(1, :na) g""",
}

CANDIDATE_INDEXES = [
    "CREATE INDEX ix_schedules_activated_start ON schedules (start_at) "
    "WHERE kind = 'active' AND member_type = 'Activated'",
    "CREATE INDEX ix_schedules_created ON schedules (created_at)",
    "CREATE INDEX ix_schedules_ended ON schedules (ended_at)",
    "CREATE INDEX ix_requests_approval_created ON schedule_requests (created_at) "
    "WHERE approval_deadline IS NOT NULL",
]


async def build(engine: AsyncEngine, *, principals: int, requests: int, audit: int) -> None:
    params = {
        "end": END,
        "w0": END - timedelta(weeks=WEEKS),
        "np": principals,
        "nr": requests,
        "na": audit,
    }
    async with engine.begin() as conn:
        if await conn.scalar(text("SELECT count(*) FROM principals")):
            raise SystemExit("the database is not empty; give an empty one")
        await conn.execute(text("SELECT setseed(0.42)"))
        for table, sql in BUILD.items():
            t = time.perf_counter()
            used = {k: v for k, v in params.items() if f":{k}" in sql}
            for key, value in used.items():  # asyncpg needs the types spelled out
                sql = sql.replace(
                    f":{key}",
                    f"CAST(:{key} AS {'timestamptz' if isinstance(value, datetime) else 'int'})",
                )
            result = await conn.execute(text(sql), used)
            print(f"  {table}: {result.rowcount:,} rows in {time.perf_counter() - t:.1f}s")
        for table in (
            "principals",
            "schedule_requests",
            "approval_steps",
            "schedules",
            "audit_events",
        ):
            await conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
            )
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))


class QueryTimes:
    """Wraps the digest's query functions to time each one by name. Time spent in a nested
    wrapped call is booked to "outer/inner", not to the outer one."""

    _instance: QueryTimes | None = None

    def __init__(self) -> None:
        self.runs: dict[str, list[float]] = defaultdict(list)
        self._current: dict[str, float] = defaultdict(float)
        self._stack: list[list[Any]] = []  # [name, time in nested calls]

    @classmethod
    def installed(cls) -> QueryTimes:
        """Fresh counters; the wrappers go in once per process."""
        if cls._instance is None:
            cls._instance = cls()
            cls._instance._install()
        cls._instance.runs.clear()
        return cls._instance

    def _install(self) -> None:
        for module in (digest_sql, alerts):
            for name in dir(module):
                fn = getattr(module, name)
                if (
                    inspect.iscoroutinefunction(fn)
                    and getattr(fn, "__module__", "") == module.__name__
                    and name != "compute_alerts"
                    and name[0] != "_"
                ):
                    setattr(module, name, self._wrap(name, fn))

    def _wrap(self, name: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        @functools.wraps(fn)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            self._stack.append([name, 0.0])
            t = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                spent = time.perf_counter() - t
                path = "/".join(frame[0] for frame in self._stack)
                self._current[path] += spent - self._stack.pop()[1]
                if self._stack:
                    self._stack[-1][1] += spent

        return timed

    def end_run(self) -> None:
        for name, secs in self._current.items():
            self.runs[name].append(secs)
        self._current.clear()


async def time_digest(engine: AsyncEngine, runs: int, label: str) -> None:
    uow = UnitOfWork(engine)
    times = QueryTimes.installed()
    walls = []
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(runs):
        t = time.perf_counter()
        digest = await compute_digest(uow, end=END, options=OPTIONS)
        walls.append(time.perf_counter() - t)
        times.end_run()
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    tracemalloc.start()
    tracemalloc.reset_peak()
    await compute_digest(uow, end=END, options=OPTIONS)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"\n### compute_digest, {label}\n")
    print("| measure | value |\n|---|---|")
    print(f"| wall time, min of {runs} | {min(walls) * 1000:.0f} ms |")
    print(f"| wall time, median of {runs} | {statistics.median(walls) * 1000:.0f} ms |")
    print(f"| tracemalloc peak (one run) | {peak / 1024:.0f} KiB |")
    print(f"| peak RSS growth over the {runs} runs | {rss_growth / 1024:.1f} MiB |")
    print("\n| query | median ms |\n|---|---|")
    for name, secs in sorted(times.runs.items(), key=lambda kv: -statistics.median(kv[1])):
        if statistics.median(secs) >= 0.0005:
            print(f"| {name} | {statistics.median(secs) * 1000:.1f} |")
    print(
        f"\nactivations {digest.tiles[0].value} (previous {digest.tiles[0].previous}), "
        f"daily {digest.daily_activations}, requests needing approval "
        f"{digest.approvals[0].value}, median decision {digest.approvals[5].value}s, "
        f"{len(digest.alerts)} alerts"
    )


async def main(url: str, args: argparse.Namespace) -> None:
    engine = make_engine(url)
    try:
        await upgrade(engine)
        print(
            f"building {args.principals:,} principals, {args.requests:,} requests, "
            f"{args.audit:,} audit events ..."
        )
        t = time.perf_counter()
        await build(engine, principals=args.principals, requests=args.requests, audit=args.audit)
        print(f"built in {time.perf_counter() - t:.0f}s")
        async with engine.connect() as conn:
            counts = {
                t: await conn.scalar(text(f"SELECT count(*) FROM {t}"))
                for t in (
                    "principals",
                    "roles",
                    "schedules",
                    "schedule_requests",
                    "approval_steps",
                    "audit_events",
                )
            }
        print("\n| table | rows |\n|---|---|")
        for table, n in counts.items():
            print(f"| {table} | {n:,} |")
        await time_digest(engine, args.runs, "schema indexes only")
        if args.with_indexes:
            async with engine.begin() as conn:
                for ddl in CANDIDATE_INDEXES:
                    await conn.execute(text(ddl))
                await conn.execute(text("ANALYZE"))
            await time_digest(engine, args.runs, "with the candidate indexes")
    finally:
        await engine.dispose()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="an empty PostgreSQL database")
    parser.add_argument("--principals", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--audit", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--with-indexes", action="store_true")
    args = parser.parse_args()
    if args.database_url:
        asyncio.run(main(args.database_url, args))
        return
    from tests.pgserver import PostgresServer

    with PostgresServer() as server:
        asyncio.run(main(server.create_database("digest_bench"), args))


if __name__ == "__main__":
    cli()
