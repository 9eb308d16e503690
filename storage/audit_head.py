"""The audit chain's head as this process last committed it, and the INSERT that trusts it
only while the database agrees.

Every append used to read the head first: one statement (on PostgreSQL a round trip) inside
the chain's lock, on every state change. A process that appends most of the events already
knows the head: the last one it committed. It chains onto that and writes the rows with ONE
guarded INSERT that inserts nothing unless the head in the database is still exactly that
(same id, same hash, nothing after it); then the caller reads the head and appends as
before. Another replica's append, a rolled-back transaction or a deleted row only costs the
read again, never a wrong link.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import cast

from sqlalchemy import (
    ColumnClause,
    Insert,
    Select,
    Table,
    and_,
    bindparam,
    exists,
    insert,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditEvent

# session.info keys: the UnitOfWork's HeadCache (shared by its sessions), and the head this
# transaction has written so far (moved into the cache once it commits).
HEAD_CACHE_INFO = "pim_audit_head_cache"
TX_HEAD = "pim_audit_tx_head"

_TABLE = cast(Table, AuditEvent.__table__)
# A use case writes one to three events; a batch (expiries, a policy apply) writes hundreds,
# where one read more is nothing and a statement of hundreds of guarded SELECTs is a lot.
MOST_GUARDED = 4
# LIMIT 1 written into the SQL: as a parameter, a prepared statement's generic plan does not
# know the limit, and sorted the whole chain rather than read the key's last leaf.
ONE: ColumnClause[int] = literal_column("1")
COLUMNS = ("id", "at", "actor", "action", "target", "details", "prev_hash", "hash", "key_id")


@dataclass(slots=True)
class HeadCache:
    """(id, hash) of the newest event this process committed; None until it knows one."""

    head: tuple[int, str] | None = None

    def advance(self, head: tuple[int, str]) -> None:
        # Commits finish in chain order, but their callers may resume in any order.
        if self.head is None or head[0] > self.head[0]:
            self.head = head


def known_head(session: AsyncSession, *, rows: int) -> tuple[int, str] | None:
    """The head to chain `rows` events onto without reading it: this transaction's own,
    else the cache's; None when it must be read (or the rows are too many to guard)."""
    if rows > MOST_GUARDED:
        return None
    mine = session.info.get(TX_HEAD)
    if mine is not None:
        return cast(tuple[int, str], mine)
    shared = session.info.get(HEAD_CACHE_INFO)
    return shared.head if isinstance(shared, HeadCache) else None


@cache
def guarded_insert(n: int) -> Insert:
    """INSERT of n rows (parameters `<column><i>`) that happens only if the newest event is
    (`head_id`, `head_hash`). Built once per n, n at most MOST_GUARDED."""
    head, newest = _TABLE.alias("head"), _TABLE.alias("newest")
    guard = and_(
        exists().where(head.c.id == bindparam("head_id"), head.c.hash == bindparam("head_hash")),
        # "Nothing after it" as the newest id, not as NOT EXISTS (id > head): PostgreSQL
        # planned that as a scan of the whole chain whenever its statistics were older than
        # the table's growth, a scan per append. Newest-first by key, one row, reads the
        # primary key's last leaf on any statistics, as long as the planner knows it is one
        # row (ONE).
        select(newest.c.id).order_by(newest.c.id.desc()).limit(ONE).scalar_subquery()
        == bindparam("head_id"),
    )
    rows: list[Select[tuple[object, ...]]] = [
        select(*(bindparam(f"{c}{i}", type_=_TABLE.c[c].type) for c in COLUMNS)).where(guard)
        for i in range(n)
    ]
    return insert(_TABLE).from_select(list(COLUMNS), rows[0] if n == 1 else union_all(*rows))
