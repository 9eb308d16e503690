"""Policy apply at scale: seconds and peak memory to apply N principals, each with one eligible
assignment, to an empty database, and to re-apply the same file (a no-op plan).

Each run is its own process, so its peak RSS is its own. Besides wall-clock seconds the table
gives the CPU seconds the process used (every thread), the steadier figure on a shared machine,
and for the throwaway PostgreSQL server the CPU seconds of its processes during the apply;
the load average at the start is printed above it.

    python bench/policy_apply.py                                    # SQLite, 10k and 100k
    python bench/policy_apply.py --sizes 1000 100000 --postgres     # also a throwaway PostgreSQL
    python bench/policy_apply.py --database-url postgresql://USER@HOST:PORT/DB
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from handlers.clock import FixedClock  # noqa: E402
from handlers.policy import apply_policy  # noqa: E402
from storage.db import make_engine  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.uow import UnitOfWork  # noqa: E402

ROLES = 10
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def policy_text(n: int) -> str:
    lines = ["admins: [u0@bench.example]", "principals:"]
    lines += [
        f"  - {{email: u{i}@bench.example, name: User {i}, slack_id: U{i:08d}}}" for i in range(n)
    ]
    lines.append("roles:")
    lines += [
        f"  - {{id: role-{r}, name: Role {r}, settings: {{max_duration: 4h}}}}"
        for r in range(ROLES)
    ]
    lines.append("assignments:")
    lines += [
        f"  - {{principal: u{i}@bench.example, role: role-{i % ROLES}, type: eligible}}"
        for i in range(n)
    ]
    return "\n".join(lines) + "\n"


def server_cpu(postmaster: int) -> float:
    """CPU seconds used so far by a local PostgreSQL server's processes (Linux /proc)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == postmaster or stat.parent.name == str(postmaster):
            ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


async def child(url: str, n: int, postmaster: int) -> dict[str, float]:
    text = policy_text(n)
    engine = make_engine(url)
    try:
        await upgrade(engine)
        uow = UnitOfWork(engine)
        started, cpu = time.perf_counter(), time.process_time()
        server = server_cpu(postmaster) if postmaster else 0.0
        plan = await apply_policy(
            uow, FixedClock(NOW), text=text, source="bench.yaml", max_bytes=len(text.encode())
        )
        first, first_cpu = time.perf_counter() - started, time.process_time() - cpu
        server = server_cpu(postmaster) - server if postmaster else float("nan")
        started, cpu = time.perf_counter(), time.process_time()
        again = await apply_policy(
            uow, FixedClock(NOW), text=text, source="bench.yaml", max_bytes=len(text.encode())
        )
        second, second_cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await engine.dispose()
    assert len(plan.changes) == 2 * n + ROLES + 1 and not again.changes
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "apply": first,
        "apply_cpu": first_cpu,
        "server_cpu": server,
        "reapply": second,
        "reapply_cpu": second_cpu,
        "rss_mb": rss_mb,
        "file_mb": len(text.encode()) / 1e6,
    }


def run_child(url: str, n: int, postmaster: int = 0) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", url, str(n), str(postmaster)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--database-url", help="a PostgreSQL database to use (emptied by you)")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="also start a throwaway PostgreSQL server (tests/pgserver.py)",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, n, postmaster = args.child
        print(json.dumps(asyncio.run(child(url, int(n), int(postmaster)))))
        return
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(
        f"{'principals':>10}  {'database':<10} {'file MB':>7} {'apply s':>8} "
        f"{'apply CPU s':>11} {'server CPU s':>12} {'re-apply s':>10} {'re-apply CPU s':>14} "
        f"{'peak RSS MB':>11}"
    )

    def report(n: int, name: str, url: str, postmaster: int = 0) -> None:
        r = run_child(url, n, postmaster)
        print(
            f"{n:>10}  {name:<10} {r['file_mb']:>7.1f} {r['apply']:>8.1f} "
            f"{r['apply_cpu']:>11.1f} {r['server_cpu']:>12.1f} {r['reapply']:>10.1f} "
            f"{r['reapply_cpu']:>14.1f} {r['rss_mb']:>11.0f}",
            flush=True,
        )

    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            report(n, "sqlite", f"sqlite+aiosqlite:///{tmp}/bench-{n}.db")
    if args.database_url:
        for n in args.sizes[:1]:
            report(n, "postgresql", args.database_url)
    if args.postgres:
        from tests.pgserver import PostgresServer

        with PostgresServer() as server:
            postmaster = int((server.datadir / "postmaster.pid").read_text().split()[0])
            for n in args.sizes:
                url = server.create_database(f"bench_{uuid.uuid4().hex}")
                report(n, "postgresql", url, postmaster)


if __name__ == "__main__":
    main()
