"""When review instances open, remind and close: durable timer rows, like every other
time-based thing.

Opening is exactly once across replicas for the same reasons as the digest: the opening
timer has a unique key (`review-open:<id>:<number>:<epoch>`) inserted with INSERT … ON
CONFLICT DO NOTHING, so every replica that applies the policy agrees on one row; one sweeper
claims it; and the instance row is unique per (definition, scheduled start) as a last guard.
Each opening inserts the next instance's timer the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.reviews.definitions import ReviewSpec, next_instance
from storage.models import Timer
from vocab.states import TimerStatus

OPEN, REMIND, CLOSE = "review_open", "review_remind", "review_close"
_OPEN_PREFIX = "review-open:"


def open_key(review_id: str, number: int, start: datetime) -> str:
    return f"{_OPEN_PREFIX}{review_id}:{number}:{int(start.timestamp())}"


def parse_open_key(key: str | None) -> tuple[str, int, datetime] | None:
    if not key or not key.startswith(_OPEN_PREFIX):
        return None
    review_id, number, epoch = key.removeprefix(_OPEN_PREFIX).rsplit(":", 2)
    return review_id, int(number), datetime.fromtimestamp(int(epoch), UTC)


async def insert_timer(
    s: AsyncSession, *, kind: str, key: str, due_at: datetime, subject_id: int | None = None
) -> bool:
    """Insert a keyed timer unless one with that key exists; True when this call did."""
    insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
    values: dict[str, Any] = {
        "kind": kind,
        "key": key,
        "due_at": due_at,
        "subject_id": subject_id,
        "status": TimerStatus.PENDING,
        "attempts": 0,
    }
    result = await s.execute(
        insert(Timer).values(**values).on_conflict_do_nothing(index_elements=["key"])
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def schedule_next(
    s: AsyncSession, *, spec: ReviewSpec, now: datetime, after: int = 0, replace: bool = False
) -> datetime | None:
    """Make sure the next instance after number `after` has its opening timer. replace: the
    definition changed, so a waiting timer for another day is dropped first."""
    found = next_instance(spec, after=after, now=now)
    key = open_key(spec.id, *found) if found else None
    if replace:
        await s.execute(
            update(Timer)
            .where(
                Timer.kind == OPEN,
                Timer.status == TimerStatus.PENDING,
                Timer.key.startswith(f"{_OPEN_PREFIX}{spec.id}:"),
                Timer.key != (key or ""),
            )
            .values(status=TimerStatus.CANCELED, done_at=now, last_error="definition changed")
            .execution_options(synchronize_session=False)
        )
    if found is None or key is None:
        return None
    await insert_timer(s, kind=OPEN, key=key, due_at=found[1])
    return found[1]


async def retire_definition(s: AsyncSession, *, review_id: str, now: datetime) -> None:
    await s.execute(
        update(Timer)
        .where(
            Timer.kind == OPEN,
            Timer.status == TimerStatus.PENDING,
            Timer.key.startswith(f"{_OPEN_PREFIX}{review_id}:"),
        )
        .values(status=TimerStatus.CANCELED, done_at=now, last_error="review removed")
        .execution_options(synchronize_session=False)
    )


async def instance_timers(
    s: AsyncSession, *, instance_id: int, starts_at: datetime, ends_at: datetime, now: datetime
) -> None:
    """Reminders halfway through and one day before the end (when that is later than
    halfway), and the close at the end."""
    halfway = starts_at + (ends_at - starts_at) / 2
    day_before = ends_at - timedelta(days=1)
    reminders = [("half", halfway)] + ([("day", day_before)] if day_before > halfway else [])
    for name, due in reminders:
        if due > now:
            await insert_timer(
                s,
                kind=REMIND,
                key=f"review:{instance_id}:{name}",
                due_at=due,
                subject_id=instance_id,
            )
    await insert_timer(
        s, kind=CLOSE, key=f"review:{instance_id}:close", due_at=ends_at, subject_id=instance_id
    )


async def cancel_instance_timers(s: AsyncSession, *, instance_id: int, now: datetime) -> None:
    await s.execute(
        update(Timer)
        .where(
            Timer.subject_id == instance_id,
            Timer.kind.in_([REMIND, CLOSE]),
            Timer.status == TimerStatus.PENDING,
        )
        .values(status=TimerStatus.CANCELED, done_at=now)
        .execution_options(synchronize_session=False)
    )
