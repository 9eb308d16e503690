"""The hash-chained audit log: append, verify, read.

The audit key (see storage.audit_hash) reaches this module through the session's `info`,
where UnitOfWork puts it, so every use case keys its events without passing the key around.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Insert, Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from storage.audit_hash import GENESIS, AuditKey, event_hash
from storage.audit_head import COLUMNS, ONE, TX_HEAD, guarded_insert, known_head
from storage.models import AuditEvent

__all__ = [
    "GENESIS",
    "AUDIT_KEY_INFO",
    "add_events",
    "AuditKey",
    "AuditKeyError",
    "NewEvent",
    "VerifyResult",
    "append_event",
    "append_events",
    "append_many_events",
    "check_key",
    "count_events",
    "event_hash",
    "execute_taking_chain_lock",
    "iter_events",
    "session_key",
    "verify_chain",
]

AUDIT_KEY_INFO = "pim_audit_key"
_AUDIT_TABLE = cast(Table, AuditEvent.__table__)
# session.info key: the audit actions appended in the session's transaction.
COMMITTED_ACTIONS = "pim_audit_actions"
# Any constant works; it only has to be the same in every process sharing the database.
_AUDIT_LOCK_KEY = 7_244_613
_PG_LOCK = text("SELECT pg_advisory_xact_lock(:k)")
# The same lock as a RETURNING column: a write that carries it takes the lock in its own round
# trip (execute_taking_chain_lock). session.info key: the statement just run took it.
_LOCK_COLUMN = func.pg_advisory_xact_lock(_AUDIT_LOCK_KEY).label("chain_locked")
_LOCK_CARRIED = "pim_audit_lock_carried"
# Table columns, not the model's: a plain Core statement, no ORM machinery per append.
_HEAD = (
    select(_AUDIT_TABLE.c.id, _AUDIT_TABLE.c.hash, _AUDIT_TABLE.c.key_id)
    .order_by(_AUDIT_TABLE.c.id.desc())
    .limit(ONE)
)


class AuditKeyError(ValueError):
    """The log is keyed with one key and this process holds another, or none."""

    def __init__(self, *, logged: str, held: str | None) -> None:
        self.logged, self.held = logged, held
        mine = f"key id {held}" if held else "no audit key"
        super().__init__(
            f"the audit log is keyed with key id {logged}, and this process has "
            f"{mine}: set PIM_AUDIT_KEY to the key the log was written with"
        )


def session_key(session: AsyncSession) -> AuditKey | None:
    key = session.info.get(AUDIT_KEY_INFO)
    return key if isinstance(key, AuditKey) else None


@dataclass(frozen=True, slots=True)
class NewEvent:
    """One event to append; `details` must be JSON-serialisable (other values become str)."""

    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any] = field(default_factory=dict)


async def append_event(
    session: AsyncSession,
    *,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add one event at the head of the chain, inside the caller's transaction."""
    item = NewEvent(at=at, actor=actor, action=action, target=target, details=details or {})
    return (await append_events(session, [item]))[0]


async def append_events(session: AsyncSession, items: Sequence[NewEvent]) -> list[AuditEvent]:
    """add_events, returning the events as written."""
    return [AuditEvent(**v) for v in await _append(session, items)]


async def add_events(session: AsyncSession, items: Sequence[NewEvent]) -> None:
    """Add events at the head of the chain in the order given, inside the caller's
    transaction: one lock and one INSERT however many there are, chained onto the head this
    process last committed (storage.audit_head); the head is read only when that is stale.
    No object is made for the rows: the use cases never read them back."""
    await _append(session, items)


async def _append(session: AsyncSession, items: Sequence[NewEvent]) -> list[dict[str, Any]]:
    if not items:
        return []
    await _lock(session)
    if session.new or session.dirty or session.deleted:
        # What the caller added goes first, as the ORM's INSERT of these rows would flush it.
        await session.flush()
    head, values = known_head(session, rows=len(items)), None
    if head is not None:
        values = _rows(items, head=head, key=session_key(session))
        params = {f"{c}{i}": row[c] for i, row in enumerate(values) for c in COLUMNS}
        done = await (await session.connection()).execute(
            guarded_insert(len(values)), {**params, "head_id": head[0], "head_hash": head[1]}
        )
        if done.rowcount != len(values):  # type: ignore[attr-defined]
            values = None  # someone else appended since: read the head after all
    if values is None:
        values = await _chained(session, items, locked=True)
        # One plain INSERT (the ids are ours), not a unit of work: no reading back.
        await session.execute(insert(_AUDIT_TABLE), values)
    _appended(session, items, values)
    return values


async def append_many_events(session: AsyncSession, items: Sequence[NewEvent]) -> None:
    """append_events for thousands of events (a policy apply): the rows go in as plain
    values, one executemany per call, with no object made for each (making them cost more
    than the hashing and the insert together)."""
    if items:
        values = await _chained(session, items)
        conn = await session.connection()
        await conn.execute(insert(_AUDIT_TABLE), values)
        _appended(session, items, values)


async def execute_taking_chain_lock(
    session: AsyncSession, statement: Insert, params: Sequence[dict[str, Any]]
) -> None:
    """Run an INSERT that is the transaction's last write before it appends audit events,
    and on PostgreSQL take the chain's lock in the same statement: the append then costs
    one round trip, not two. The lock is taken after the statement's snapshot, which is
    why it rides on a write before the append and never on the append itself."""
    conn = await session.connection()
    if conn.dialect.name != "postgresql":
        await conn.execute(statement, params)
        return
    await conn.execute(_carrying_lock(statement), params)
    session.info[_LOCK_CARRIED] = True


_CARRYING: dict[int, tuple[Insert, Insert]] = {}


def _carrying_lock(statement: Insert) -> Insert:
    # Built once per statement: a new statement object each time is a cache key computed
    # each time.
    kept = _CARRYING.get(id(statement))
    if kept is None or kept[0] is not statement:
        kept = (statement, statement.returning(_LOCK_COLUMN))
        _CARRYING[id(statement)] = kept
    return kept[1]


async def _lock(session: AsyncSession) -> None:
    # Consumed at once: a savepoint rolled back later would release the lock it took.
    if session.info.pop(_LOCK_CARRIED, False):
        return
    if session.get_bind().dialect.name == "postgresql":
        # Serialise appenders until commit so two transactions never chain onto the same head.
        await (await session.connection()).execute(_PG_LOCK, {"k": _AUDIT_LOCK_KEY})


async def _chained(
    session: AsyncSession, items: Sequence[NewEvent], *, locked: bool = False
) -> list[dict[str, Any]]:
    """The rows of `items`, each chained to the one before it, from the head as read now."""
    if not locked:
        await _lock(session)
    key = session_key(session)
    head = (await session.execute(_HEAD)).first()
    if head is not None and head[2] is not None and (key is None or key.key_id != head[2]):
        # Appending unkeyed (or under another key) would break the chain for good.
        raise AuditKeyError(logged=head[2], held=key.key_id if key else None)
    return _rows(items, head=(head[0], head[1]) if head else None, key=key)


def _appended(
    session: AsyncSession, items: Sequence[NewEvent], values: list[dict[str, Any]]
) -> None:
    # The unit of work hands these to its commit hook (metrics) once they are committed,
    # and the new head to its HeadCache.
    session.info.setdefault(COMMITTED_ACTIONS, []).extend(item.action for item in items)
    session.info[TX_HEAD] = (values[-1]["id"], values[-1]["hash"])


def _rows(
    items: Sequence[NewEvent], *, head: tuple[int, str] | None, key: AuditKey | None
) -> list[dict[str, Any]]:
    """The rows of `items`, each chained to the one before it, the first to `head`."""
    next_id, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
    key_id = key.key_id if key else None
    rows = []
    for item in items:
        # JSON round trip now, so the hash is computed over exactly what the database returns.
        clean = json.loads(json.dumps(item.details, default=str))
        digest = event_hash(
            id=next_id,
            at=item.at,
            actor=item.actor,
            action=item.action,
            target=item.target,
            details=clean,
            prev_hash=prev,
            key=key,
        )
        rows.append(
            {
                "id": next_id,
                "at": item.at,
                "actor": item.actor,
                "action": item.action,
                "target": item.target,
                "details": clean,
                "prev_hash": prev,
                "key_id": key_id,
                "hash": digest,
            }
        )
        next_id, prev = next_id + 1, digest
    return rows


async def check_key(session: AsyncSession) -> None:
    """Raise AuditKeyError now if the next append would: checked at start-up."""
    logged = await session.scalar(select(AuditEvent.key_id).order_by(AuditEvent.id.desc()).limit(1))
    key = session_key(session)
    if logged is not None and (key is None or key.key_id != logged):
        raise AuditKeyError(logged=logged, held=key.key_id if key else None)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int
    broken_id: int | None = None
    reason: str = ""
    first_keyed: int | None = None  # the first keyed event; None: none is keyed
    needs_key: str | None = None  # the key id the rows from broken_id on need


async def verify_chain(session: AsyncSession) -> VerifyResult:
    """Check every link and hash, keyed rows under the session's key. An unkeyed row after
    a keyed one is a break: that is how a rewrite without the key would look."""
    key = session_key(session)
    prev_hash, prev_id, checked, first_keyed = GENESIS, 0, 0, None
    async for row in iter_events(session):
        if row.id != prev_id + 1:
            return VerifyResult(False, checked, row.id, f"row {prev_id + 1} is missing")
        if row.prev_hash != prev_hash:
            return VerifyResult(
                False, checked, row.id, "previous-hash link broken (a row was removed or reordered)"
            )
        if row.key_id is None and first_keyed is not None:
            return VerifyResult(
                False,
                checked,
                row.id,
                f"unkeyed although event {first_keyed} before it is keyed "
                "(rewritten without the key)",
            )
        if row.key_id is not None and (key is None or key.key_id != row.key_id):
            return VerifyResult(
                False,
                checked,
                row.id,
                "keyed with another key",
                first_keyed=first_keyed,
                needs_key=row.key_id,
            )
        if row.hash != event_hash(
            id=row.id,
            at=row.at,
            actor=row.actor,
            action=row.action,
            target=row.target,
            details=row.details,
            prev_hash=row.prev_hash,
            key=key if row.key_id is not None else None,
        ):
            return VerifyResult(False, checked, row.id, "contents do not match the hash (edited)")
        if row.key_id is not None and first_keyed is None:
            first_keyed = row.id
        prev_hash, prev_id, checked = row.hash, row.id, checked + 1
    return VerifyResult(True, checked, first_keyed=first_keyed)


async def iter_events(
    session: AsyncSession,
    *,
    since: datetime | None = None,
    after_id: int = 0,
    batch: int = 1000,
) -> AsyncIterator[AuditEvent]:
    last_id = after_id
    while True:
        stmt = select(AuditEvent).where(AuditEvent.id > last_id)
        if since is not None:
            stmt = stmt.where(AuditEvent.at >= since)
        rows = (await session.scalars(stmt.order_by(AuditEvent.id).limit(batch))).all()
        if not rows:
            return
        for row in rows:
            yield row
        last_id = rows[-1].id


async def count_events(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count(AuditEvent.id))) or 0)
