"""Access review at scale: open a review over N eligible assignments with R reviewers, let
each reviewer decide one item in chat, then end it and apply it (on_no_response:
recommendation, and nobody has activated, so nearly every assignment is removed, each with
its audit event and its notice).

Prints seconds to open, milliseconds per decision, seconds to apply, and the peak RSS of the
process while seeding, opening and applying (the peak is reset between steps). Each
database runs in its own process, so its peak is its own.

    python bench/review.py                          # SQLite, 10,000 assignments, 200 reviewers
    python bench/review.py --postgres               # also a throwaway PostgreSQL server
    python bench/review.py --assignments 50000 --reviewers 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
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

from sqlalchemy import func, insert, select  # noqa: E402

from handlers.clock import FixedClock  # noqa: E402
from handlers.reviews.apply import end_review  # noqa: E402
from handlers.reviews.decide import decide_item  # noqa: E402
from handlers.reviews.definitions import ReviewSpec  # noqa: E402
from handlers.reviews.open import start_review  # noqa: E402
from handlers.settings import RoleSettings  # noqa: E402
from storage.db import make_engine  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.models import (  # noqa: E402
    Principal,
    ReviewDefinition,
    ReviewItem,
    ReviewReviewer,
    Role,
    Schedule,
)
from storage.uow import UnitOfWork  # noqa: E402
from vocab.states import MemberType, ReviewDecision, ScheduleKind, ScheduleState  # noqa: E402

NOW = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
PER_ROLE_APPROVERS = 2


def rss_mb() -> float:
    """Peak RSS since the last reset_peak() (VmHWM), else since the process started."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def reset_peak() -> None:
    """Start measuring the peak afresh (Linux: writing 5 to clear_refs resets VmHWM), so each
    step's peak is its own rather than the seeding's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


async def seed(uow: UnitOfWork, *, assignments: int, reviewers: int) -> None:
    """Reviewers first, then the people under review; one role per pair of approvers."""
    roles = reviewers // PER_ROLE_APPROVERS
    async with uow.transaction() as s:
        await s.execute(
            insert(Principal),
            [
                {
                    "email": f"u{i}@bench.example",
                    "display_name": f"User {i}",
                    "admin": i == 0,
                    "created_at": NOW,
                }
                for i in range(reviewers + assignments)
            ],
        )
        await s.execute(
            insert(Role),
            [
                {
                    "id": f"role-{r}",
                    "display_name": f"Role {r}",
                    "description": "",
                    "settings": RoleSettings.from_mapping(
                        {
                            "approvers": [
                                f"u{PER_ROLE_APPROVERS * r + k}@bench.example"
                                for k in range(PER_ROLE_APPROVERS)
                            ]
                        }
                    ).to_mapping(),
                    "created_at": NOW,
                }
                for r in range(roles)
            ],
        )
        ids = list(await s.scalars(select(Principal.id).order_by(Principal.id)))
        await s.execute(
            insert(Schedule),
            [
                {
                    "principal_id": ids[reviewers + i],
                    "role_id": f"role-{i % roles}",
                    "kind": ScheduleKind.ELIGIBLE,
                    "member_type": MemberType.ASSIGNED,
                    "state": ScheduleState.ACTIVE,
                    "start_at": NOW,
                    "created_at": NOW,
                }
                for i in range(assignments)
            ],
        )
        spec = ReviewSpec.from_mapping(
            {
                "id": "bench",
                "name": "Bench review",
                "roles": "all",
                "assignments": "eligible",
                "reviewers": "approvers",
                "recurrence": "once",
                "start": "2027-01-04",
                "duration": "14d",
                "on_no_response": "recommendation",
            }
        )
        s.add(
            ReviewDefinition(
                id="bench", name=spec.name, spec=spec.to_mapping(), created_at=NOW, updated_at=NOW
            )
        )


async def child(url: str, assignments: int, reviewers: int) -> dict[str, float]:
    engine = make_engine(url)
    try:
        await upgrade(engine)
        uow = UnitOfWork(engine)
        clock = FixedClock(NOW)
        await seed(uow, assignments=assignments, reviewers=reviewers)
        seeded = rss_mb()
        reset_peak()
        started = time.perf_counter()
        await start_review(uow, clock, actor="bench", review_id="bench")
        opened = time.perf_counter() - started
        after_open = rss_mb()
        async with uow.read() as s:  # one item per reviewer, as each would click
            picks = (
                await s.execute(
                    select(ReviewReviewer.reviewer_id, func.min(ReviewReviewer.item_id)).group_by(
                        ReviewReviewer.reviewer_id
                    )
                )
            ).all()
            emails = dict((await s.execute(select(Principal.id, Principal.email))).all())
            items = await s.scalar(select(func.count(ReviewItem.id)))
            pairs = await s.scalar(select(func.count()).select_from(ReviewReviewer))
        started = time.perf_counter()
        decided = 0
        for reviewer, item in picks:
            try:
                await decide_item(
                    uow,
                    clock,
                    actor=emails[reviewer],
                    item_id=item,
                    decision=ReviewDecision.APPROVE,
                )
                decided += 1
            except Exception:  # noqa: BLE001 - the other approver of that item was first
                pass
        per_decision = (time.perf_counter() - started) / max(1, len(picks))
        clock.set(NOW.replace(day=10))
        reset_peak()
        started = time.perf_counter()
        line = await end_review(uow, clock, actor="bench", review_id="bench")
        applied = time.perf_counter() - started
    finally:
        await engine.dispose()
    return {
        "items": float(items or 0),
        "pairs": float(pairs or 0),
        "decided": float(decided),
        "open_s": opened,
        "decide_ms": per_decision * 1000,
        "apply_s": applied,
        "rss_seeded": seeded,
        "rss_open": after_open,
        "rss_apply": rss_mb(),
        "removed": float(line.split("applied: ")[1].split(" ")[0]),
    }


def run_child(url: str, assignments: int, reviewers: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", url, str(assignments), str(reviewers)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignments", type=int, default=10_000)
    parser.add_argument("--reviewers", type=int, default=200)
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="also start a throwaway PostgreSQL server (tests/pgserver.py)",
    )
    parser.add_argument("--database-url", help="a PostgreSQL database to use (emptied by you)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, n, r = args.child
        print(json.dumps(asyncio.run(child(url, int(n), int(r)))))
        return
    print(
        f"{'database':<10} {'items':>6} {'pairs':>6} {'open s':>7} {'decide ms':>9} "
        f"{'apply s':>7} {'removed':>7} {'RSS MB seeded/open/apply':>25}"
    )

    def report(name: str, url: str) -> None:
        r = run_child(url, args.assignments, args.reviewers)
        rss = f"{r['rss_seeded']:.0f} / {r['rss_open']:.0f} / {r['rss_apply']:.0f}"
        print(
            f"{name:<10} {r['items']:>6.0f} {r['pairs']:>6.0f} {r['open_s']:>7.2f} "
            f"{r['decide_ms']:>9.1f} {r['apply_s']:>7.2f} {r['removed']:>7.0f} {rss:>25}",
            flush=True,
        )

    with tempfile.TemporaryDirectory() as tmp:
        report("sqlite", f"sqlite+aiosqlite:///{tmp}/bench-review.db")
    if args.database_url:
        report("postgresql", args.database_url)
    if args.postgres:
        from tests.pgserver import PostgresServer

        with PostgresServer() as server:
            report("postgresql", server.create_database(f"bench_{uuid.uuid4().hex}"))


if __name__ == "__main__":
    main()
