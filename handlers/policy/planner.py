"""PostgreSQL's query planner and a large apply: lookups planned with their values, and
statistics brought up to date after a file has filled the tables. SQLite needs neither.

A batch's lookups (`email IN (...500 values)`, the request ids a batch draws) run the same
statement hundreds of times, so asyncpg prepares it once, and after five runs PostgreSQL may
keep a generic plan chosen while the table was small: a scan of every row per batch, each row
compared with the 500 values one by one. Re-applying 100,000 people took 511 s that way, and
the first apply a minute more. Planned with its values, a lookup probes an index or a hashed
list. Inserts are left to the cache: planning a 500-row INSERT afresh each time would double
the server's work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["MANY", "custom_plans", "refresh_statistics"]

# Rows from which statistics are refreshed: below it, a stale estimate costs nothing.
MANY = 1_000

# The tables an apply fills, for refresh_statistics.
_FILLED = (
    "principals",
    "schedules",
    "schedule_requests",
    "outbox",
    "timers",
    "grants",
    "audit_events",
)


def _postgres(s: AsyncSession) -> bool:
    return s.get_bind().dialect.name == "postgresql"


@asynccontextmanager
async def custom_plans(s: AsyncSession) -> AsyncIterator[None]:
    """Statements run inside are planned with their values (PostgreSQL), until the end of
    the block or of the transaction, whichever comes first."""
    if not _postgres(s):
        yield
        return
    await s.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    try:
        yield
    finally:
        await s.execute(text("SET LOCAL plan_cache_mode = auto"))


async def refresh_statistics(s: AsyncSession, *tables: str) -> None:
    """Until autovacuum comes by (a minute or more), PostgreSQL plans for the tables as they
    were before a large file filled them: each command, and the next apply, would scan
    100,000 people where an index finds one. ANALYZE samples at most 30,000 rows a table and
    sees this transaction's rows; it takes no lock that a reader or a writer waits for.
    `tables`: these only (by default every table an apply fills)."""
    if _postgres(s):
        await s.execute(text("ANALYZE " + ", ".join(tables or _FILLED)))
