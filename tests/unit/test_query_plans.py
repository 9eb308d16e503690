"""An ask reads by index whatever PostgreSQL's statistics say.

A shift change asks thousands of times within a minute, faster than autovacuum analyses.
The planner then believes the tables are as small as at the last ANALYZE, and a join it
thinks is over a handful of rows became a scan of every active schedule, every request and
the whole audit chain: a scan per ask, each one longer than the last (10,000 asks took 87 s
on PostgreSQL). Here the statistics are taken on the small cast, the tables then grow
thirtyfold, and the plans PostgreSQL really ran for one ask (auto_explain, in the server's
log) must touch those tables only through an index."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from handlers.activation import ActivationAsk, request_activation
from handlers.clock import FixedClock
from storage.db import make_engine
from storage.models import AuditEvent, Principal, Schedule, ScheduleRequest
from storage.uow import UnitOfWork
from tests.pgserver import PostgresServer
from tests.unit.conftest import T0, seed

pytestmark = pytest.mark.postgres

ASKS = 8
GROWN = ("schedules", "schedule_requests", "audit_events")
EXPLAINED = {
    "session_preload_libraries": "auto_explain",
    "auto_explain.log_min_duration": "0",
    "auto_explain.log_analyze": "on",
    # What a burst runs: after five executions PostgreSQL may keep a prepared statement's
    # generic plan, made without the values. Forced, so every run checks that plan.
    "plan_cache_mode": "force_generic_plan",
}
# A scan node on a grown table (any kind: a bitmap scan by state read every active schedule)
# with the rows it returned; and the rows any node read and threw away.
READ = re.compile(r"Scan .*?on (\w+)\b.*?\(actual time=\S+ rows=(\d+) loops=\d+\)")
DISCARDED = re.compile(r"Rows Removed by [\w ]+: (\d+)")
FEW = 10


async def grow(uow: UnitOfWork, n: int) -> None:
    """n people, the first half eligible for "quick" and the rest holding it active, each
    with a finished request and an audit event: rows written straight, after the
    statistics."""
    async with uow.transaction() as s:
        await s.execute(
            insert(Principal),
            [
                {"email": f"p{i}@contoso.com", "display_name": f"P {i}", "created_at": T0}
                for i in range(n)
            ],
        )
        ids = (
            await s.scalars(
                select(Principal.id).where(Principal.email.like("p%")).order_by(Principal.id)
            )
        ).all()
        await s.execute(
            insert(ScheduleRequest),
            [
                {
                    "short_id": f"R{pid:06d}",
                    "action": "selfActivate",
                    "status": "Provisioned",
                    "kind": "active",
                    "principal_id": pid,
                    "role_id": "quick",
                    "created_by_id": pid,
                    "justification": "",
                    "start_at": T0,
                    "duration_seconds": 60,
                    "created_at": T0,
                }
                for pid in ids
            ],
        )
        await s.execute(
            insert(Schedule),
            [
                {
                    "principal_id": pid,
                    "role_id": role,
                    "kind": kind,
                    "member_type": "Assigned",
                    "state": "Active",
                    "start_at": T0,
                    "created_at": T0,
                }
                for i, pid in enumerate(ids)
                for role, kind in (("quick", "eligible" if i < n // 2 else "active"),)
            ],
        )
        head = await s.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))
        await s.execute(
            insert(AuditEvent),
            [
                {
                    "id": (head or 0) + 1 + i,
                    "at": T0,
                    "actor": "seed",
                    "action": "bench.row",
                    "target": "",
                    "details": {},
                    "prev_hash": "",
                    "hash": "",
                }
                for i in range(n)
            ],
        )


@pytest.fixture
def pg_url(pg_server: PostgresServer, pg_template: str) -> Iterator[str]:
    """A clone of the migrated template of this test's own, not one recycled from other
    tests: their rows leave indexes swollen and statistics behind, which tilt the planner
    in ways no statement can count on, and the statistics are what this test sets up."""
    name = f"plans_{uuid.uuid4().hex}"
    url = pg_server.create_database(name, template=pg_template)
    try:
        yield url
    finally:
        pg_server.drop_database(name)


@pytest.mark.parametrize("analyzed", ["before the growth", "after the growth"])
async def test_an_ask_reads_by_index_on_any_statistics(
    pg_url: str, pg_server: PostgresServer, analyzed: str
) -> None:
    """Stale statistics (a burst outgrowing the last ANALYZE) and fresh ones (autovacuum
    caught up: a generic plan then guesses a LIMIT parameter at a tenth of the rows, and
    sorted the whole chain to find its newest event)."""
    clock = FixedClock(T0)
    engine = make_engine(pg_url)
    await seed(UnitOfWork(engine), clock)
    if analyzed == "before the growth":
        await _analyze(engine)
    await grow(UnitOfWork(engine), 3000)
    if analyzed == "after the growth":
        await _analyze(engine)
    await engine.dispose()

    explained = make_engine(pg_url, connect_args={"server_settings": EXPLAINED})
    uow, asked = UnitOfWork(explained), []
    try:
        # Only the last ask's plans are read: by then the audit head is known (no read).
        for i in range(ASKS):
            logged = pg_server.logfile.stat().st_size
            view = await request_activation(
                uow,
                clock,
                actor=f"p{i}@contoso.com",
                ask=ActivationAsk(role="quick", duration=timedelta(minutes=5)),
            )
            asked.append(view.status)
    finally:
        await explained.dispose()
    assert asked == ["Provisioned"] * ASKS
    with pg_server.logfile.open(errors="replace") as log:
        log.seek(logged)
        plans = log.read()
    assert "INSERT INTO audit_events" in plans, plans[-2000:]
    read = [(t, int(n)) for t, n in READ.findall(plans) if t in GROWN]
    assert read, plans
    assert max(n for _, n in read) <= FEW, plans
    assert max((int(n) for n in DISCARDED.findall(plans)), default=0) <= FEW, plans


async def _analyze(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("ANALYZE"))
