"""Large policy files apply in batches: no statement binds more values than the database allows.

A 700,000-principal file used to die on "too many SQL variables": the plan read the database
with one IN (...) of every email. SQLite builds before 3.32 (still shipped by some
distributions) allow only 999 bound values, so lowering this SQLite's limit to that shows the
same failure with a file of 1,100 people (bench/policy_apply.py runs 100,000).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.util import await_only

from handlers.clock import FixedClock
from handlers.policy import apply_policy
from storage.audit import verify_chain
from storage.db import make_engine
from storage.models import AuditEvent, OutboxMessage, Principal, Schedule, ScheduleRequest
from storage.uow import UnitOfWork

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
PEOPLE = 1_100
ROLES = ("alpha", "beta")


def policy(names: str = "User", keep: int = PEOPLE) -> str:
    lines = ["admins: [u0@contoso.com]", "principals:"]
    lines += [
        f"  - {{email: u{i}@contoso.com, name: {names} {i}, slack_id: U{i:06d}}}"
        for i in range(PEOPLE)
    ]
    lines += ["roles:"] + [f"  - {{id: {r}, name: Role {r}}}" for r in ROLES]
    lines.append("assignments:")
    lines += [
        f"  - {{principal: u{i}@contoso.com, role: {ROLES[i % 2]}, type: eligible}}"
        for i in range(keep)
    ]
    return "\n".join(lines) + "\n"


def _old_sqlite_limit(dbapi_connection: Any, _record: Any) -> None:
    connection = dbapi_connection.driver_connection
    await_only(
        connection._execute(connection._conn.setlimit, sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
    )


@pytest.fixture
async def uow(db_url: str) -> AsyncIterator[UnitOfWork]:
    if db_url.startswith("sqlite"):
        # SQLAlchemy's multi-row INSERTs assume 32,700 values per statement; an old SQLite
        # deployment would set this page size the same way (13 columns x 60 rows < 999).
        engine = make_engine(db_url, insertmanyvalues_page_size=60)
        event.listen(engine.sync_engine, "connect", _old_sqlite_limit)
    else:
        engine = make_engine(db_url)
    try:
        yield UnitOfWork(engine)
    finally:
        await engine.dispose()


async def count(uow: UnitOfWork, model: type, *where: Any) -> int:
    async with uow.transaction() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_a_file_past_the_bound_value_limit_applies_idempotently_and_audited(uow):
    clock = FixedClock(T0)
    plan = await apply_policy(uow, clock, text=policy())
    assert len(plan.changes) == 2 * PEOPLE + len(ROLES) + 1  # people, roles, admin, assignments
    assert await count(uow, Principal) == PEOPLE
    assert await count(uow, Schedule) == PEOPLE
    assert await count(uow, ScheduleRequest) == PEOPLE
    assert await count(uow, OutboxMessage) == PEOPLE  # each person is told once
    assert await count(uow, AuditEvent) == len(plan.changes)
    assert (await apply_policy(uow, clock, text=policy())).render() == "No changes."

    # Every name changes and half the assignments go: updates and removals in batches too.
    edited = policy(names="Person", keep=PEOPLE // 2)
    plan = await apply_policy(uow, clock, text=edited, prune=True)
    assert sum(c.op == "update" and c.kind == "principal" for c in plan.changes) == PEOPLE
    assert sum(c.op == "remove" and c.kind == "assignment" for c in plan.changes) == PEOPLE // 2
    assert (await apply_policy(uow, clock, text=edited, prune=True)).render() == "No changes."
    assert await count(uow, Schedule, Schedule.state == "Active") == PEOPLE // 2
    async with uow.transaction() as s:
        assert (
            await s.scalar(
                select(Principal.display_name).where(Principal.email == "u1034@contoso.com")
            )
            == "Person 1034"
        )
        result = await verify_chain(s)
    assert result.ok and result.checked == await count(uow, AuditEvent)


async def test_reapplying_a_large_file_writes_nothing_and_stays_a_few_statements_a_batch(uow):
    clock = FixedClock(T0)
    await apply_policy(uow, clock, text=policy())
    before = [
        await count(uow, model)
        for model in (AuditEvent, OutboxMessage, ScheduleRequest, Schedule, Principal)
    ]
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(uow.engine.sync_engine, "before_cursor_execute", seen)
    try:
        plan = await apply_policy(uow, clock, text=policy())
    finally:
        event.remove(uow.engine.sync_engine, "before_cursor_execute", seen)
    assert plan.applied and plan.render() == "No changes."
    after = [
        await count(uow, model)
        for model in (AuditEvent, OutboxMessage, ScheduleRequest, Schedule, Principal)
    ]
    assert after == before  # no audit event, no message, no new row
    writes = [s for s in statements if s.lstrip().split()[0].upper() in ("INSERT", "UPDATE")]
    assert writes == []
    # Reads go by batch, never by row: 1,100 people are three batches of each lookup.
    assert len(statements) < 40


async def test_a_changed_principal_in_a_large_file_is_updated(uow):
    clock = FixedClock(T0)
    await apply_policy(uow, clock, text=policy())
    await apply_policy(uow, clock, text=policy())  # the lookups run again, as at every start
    edited = policy().replace(
        "{email: u1034@contoso.com, name: User 1034, slack_id: U001034}",
        "{email: u1034@contoso.com, name: Renamed 1034, slack_id: U999999}",
    )
    audited = await count(uow, AuditEvent)
    plan = await apply_policy(uow, clock, text=edited)
    assert plan.render() == (
        '~ principal u1034@contoso.com: name "User 1034" -> "Renamed 1034"; '
        "slack_id U001034 -> U999999"
    )
    assert await count(uow, AuditEvent) == audited + 1
    async with uow.transaction() as s:
        row = (
            await s.execute(
                select(Principal.display_name, Principal.slack_id).where(
                    Principal.email == "u1034@contoso.com"
                )
            )
        ).one()
    assert tuple(row) == ("Renamed 1034", "U999999")
    assert (await apply_policy(uow, clock, text=edited)).render() == "No changes."
