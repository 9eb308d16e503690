"""Work that runs every N minutes, once per period however many replicas run it.

Every replica's clock fires at its own moment, but all name a period the same way: its start,
the UTC time rounded down to a multiple of the interval. Claiming a period inserts a timer row
whose unique key is that name (INSERT … ON CONFLICT DO NOTHING, as the digest does), so one
replica wins and the others skip it. The row starts `running` and is marked `done` (or keeps
the error) when the work ends. A replica that dies mid-run leaves its period unfinished; the
next period runs again, and the work is written so that running it again is harmless.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.models import Timer
from storage.uow import UnitOfWork
from vocab.states import TimerStatus

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def period_start(now: datetime, interval: timedelta) -> datetime:
    """The start of the period `now` falls in: the same instant on every replica."""
    periods = (now - _EPOCH) // interval
    return _EPOCH + periods * interval


def period_key(kind: str, start: datetime) -> str:
    return f"{kind}:{start.astimezone(UTC).isoformat()}"


async def claim_period(
    uow: UnitOfWork, *, kind: str, interval: timedelta, now: datetime, worker: str
) -> str | None:
    """This replica's claim on the current period of `kind`: its key, or None when another
    replica (or an earlier run here) has it already."""
    key = period_key(kind, period_start(now, interval))
    async with uow.transaction() as s:
        insert = pg_insert if uow.dialect == "postgresql" else sqlite_insert
        result = await s.execute(
            insert(Timer)
            .values(
                kind=kind,
                key=key,
                due_at=now,
                status=TimerStatus.RUNNING,
                attempts=1,
                claimed_by=worker,
            )
            .on_conflict_do_nothing(index_elements=["key"])
        )
        return key if result.rowcount == 1 else None  # type: ignore[attr-defined]


async def finish_period(
    uow: UnitOfWork, *, key: str, now: datetime, error: str | None = None
) -> None:
    async with uow.transaction() as s:
        await s.execute(
            update(Timer)
            .where(Timer.key == key)
            .values(
                status=TimerStatus.DONE,
                done_at=now,
                last_error=error[:2000] if error else None,
            )
            .execution_options(synchronize_session=False)
        )
