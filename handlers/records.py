"""What every state change writes beside itself: audit event, outbox messages, timers.

All of it goes into the caller's session, so it commits or rolls back with the change.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cards.views import Notification
from storage.audit import NewEvent, add_events, append_many_events, execute_taking_chain_lock
from storage.models import OutboxMessage, Principal, ScheduleRequest, Timer
from storage.uow import note_queued
from vocab.states import TimerStatus

SYSTEM_ACTOR = "pim-bot"


def table_of(model: type[Any]) -> Table:
    """A model's table, for plain INSERTs built once: no ORM bulk machinery per call, and
    None is written as NULL (the ORM's bulk INSERT leaves None values out, so a card
    redraw, which has no recipient, would be a statement of its own)."""
    return cast(Table, model.__table__)


# (A channel is still left out when there is none: JSON would store None as 'null'.)
_OUTBOX = insert(table_of(OutboxMessage))
_TIMERS = insert(table_of(Timer))
_ID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O or 1/I to misread


async def audit(
    session: AsyncSession,
    *,
    at: datetime,
    actor: Principal | str,
    action: str,
    target: str,
    **details: Any,
) -> None:
    who = actor.email if isinstance(actor, Principal) else actor
    await add_events(
        session, [NewEvent(at=at, actor=who, action=action, target=target, details=details)]
    )


@dataclass(frozen=True, slots=True)
class Audited:
    """One audit event of a batch (see audit_many)."""

    actor: str
    action: str
    target: str
    details: dict[str, Any] = field(default_factory=dict)


async def audit_many(session: AsyncSession, *, at: datetime, events: Sequence[Audited]) -> None:
    """Append events in order, for changes made in batches (policy apply)."""
    await append_many_events(
        session,
        [
            NewEvent(at=at, actor=e.actor, action=e.action, target=e.target, details=e.details)
            for e in events
        ],
    )


def notify(
    session: AsyncSession,
    *,
    now: datetime,
    note: Notification,
    recipients: Iterable[Principal] = (),
    channel: dict[str, str] | None = None,
    request_id: int | None = None,
) -> None:
    payload = note.to_dict()
    for person in recipients:
        session.add(
            OutboxMessage(
                **message_row(
                    now=now,
                    note=note,
                    payload=payload,
                    recipient_id=person.id,
                    request_id=request_id,
                )
            )
        )
    if channel:
        session.add(
            OutboxMessage(
                created_at=now,
                channel=channel,
                kind=note.kind,
                request_id=request_id,
                payload=payload,
                next_attempt_at=now,
            )
        )


def message_row(
    *,
    now: datetime,
    note: Notification,
    recipient_id: int | None,
    request_id: int | None = None,
    payload: dict[str, Any] | None = None,
    channel: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One outbox row as plain values, for set-based inserts (see notify_all)."""
    row = {
        "created_at": now,
        "recipient_id": recipient_id,
        "kind": note.kind,
        "request_id": request_id,
        "payload": payload or note.to_dict(),
        "next_attempt_at": now,
    }
    if channel:  # only then: a JSON None would be stored as JSON 'null', not SQL NULL
        row["channel"] = channel
    return row


def message_rows(
    *,
    now: datetime,
    note: Notification,
    recipients: Iterable[Principal] = (),
    channel: dict[str, str] | None = None,
    request_id: int | None = None,
) -> list[dict[str, Any]]:
    """notify's rows as plain values, in the same order, to queue with others in one INSERT
    (see queue_messages)."""
    payload = note.to_dict()
    rows = [
        message_row(now=now, note=note, payload=payload, recipient_id=p.id, request_id=request_id)
        for p in recipients
    ]
    if channel:
        rows.append(
            message_row(
                now=now,
                note=note,
                payload=payload,
                recipient_id=None,
                request_id=request_id,
                channel=channel,
            )
        )
    return rows


async def queue_messages(
    session: AsyncSession, rows: Sequence[dict[str, Any]], *, audit_next: bool = False
) -> None:
    """Write a use case's outbox rows in the order given, one INSERT per run of rows of the
    same shape (a row to a channel has one column more), and poke the delivery worker.
    `audit_next`: the transaction appends its audit events right after, so the last INSERT
    takes the chain's lock (storage.audit.execute_taking_chain_lock)."""
    start, conn = 0, await session.connection()
    for i in range(1, len(rows) + 1):
        if i == len(rows) or rows[i].keys() != rows[start].keys():
            if audit_next and i == len(rows):
                await execute_taking_chain_lock(session, _OUTBOX, list(rows[start:i]))
            else:
                await conn.execute(_OUTBOX, list(rows[start:i]))
            start = i
    if rows:
        note_queued(session)


async def add_timers(
    session: AsyncSession, timers: Sequence[tuple[str, datetime]], *, subject_id: int
) -> None:
    """add_timer for several (kind, due) of one subject, in one INSERT."""
    if timers:
        await (await session.connection()).execute(
            _TIMERS,
            [
                {"kind": kind, "due_at": due_at, "subject_id": subject_id, "key": None}
                for kind, due_at in timers
            ],
        )
        note_queued(session)


async def notify_all(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Write many outbox rows in one statement: a batch of expiries is one INSERT, not N."""
    if rows:
        await session.execute(insert(OutboxMessage), rows)


async def audit_all(session: AsyncSession, events: list[NewEvent]) -> None:
    await add_events(session, events)


def update_cards(
    session: AsyncSession, *, now: datetime, note: Notification, request_id: int
) -> None:
    """Ask every transport to redraw every posted copy of this request's card."""
    session.add(
        OutboxMessage(
            created_at=now,
            kind=note.kind,
            request_id=request_id,
            payload=note.to_dict(),
            next_attempt_at=now,
        )
    )


def card_update_row(*, now: datetime, note: Notification, request_id: int) -> dict[str, Any]:
    """update_cards' row as plain values (see queue_messages)."""
    return message_row(now=now, note=note, recipient_id=None, request_id=request_id)


def add_timer(
    session: AsyncSession,
    *,
    kind: str,
    due_at: datetime,
    subject_id: int,
    key: str | None = None,
) -> None:
    session.add(Timer(kind=kind, due_at=due_at, subject_id=subject_id, key=key))


async def cancel_timers(
    session: AsyncSession, *, subject_id: int, kinds: Iterable[str], now: datetime
) -> None:
    await session.execute(
        update(Timer)
        .where(
            Timer.subject_id == subject_id,
            Timer.kind.in_(list(kinds)),
            Timer.status == TimerStatus.PENDING,
        )
        .values(status=TimerStatus.CANCELED, done_at=now)
        .execution_options(synchronize_session=False)
    )


async def new_request_id(session: AsyncSession) -> str:
    for length in (4, 4, 4, 6, 6, 8):
        candidate = "R-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))
        taken = await session.scalar(
            select(ScheduleRequest.id).where(ScheduleRequest.short_id == candidate)
        )
        if taken is None:
            return candidate
    raise RuntimeError("could not find a free request id")


async def new_request_ids(session: AsyncSession, count: int) -> list[str]:
    """`count` free request ids at once, with one query per try rather than one per id.
    Short ids first, like new_request_id; a clash is drawn again, longer."""
    found: set[str] = set()
    for length in (4, 4, 6, 6, 8, 8):
        wanted = count - len(found)
        if not wanted:
            break
        candidates = {_draw(length) for _ in range(wanted)} - found
        taken = await session.scalars(
            select(ScheduleRequest.short_id).where(ScheduleRequest.short_id.in_(candidates))
        )
        found |= candidates - set(taken)
    if len(found) < count:
        raise RuntimeError("could not find free request ids")
    return list(found)


def _draw(length: int) -> str:
    # 32 letters: each random byte picks one uniformly (256 is a multiple of 32).
    return "R-" + "".join(_ID_ALPHABET[b % 32] for b in secrets.token_bytes(length))


def request_id_candidates() -> list[str]:
    """Request ids to try, in new_request_id's order of lengths, for a caller that checks
    them along with its other reads (handlers.activation_lookup)."""
    return [_draw(4), _draw(4), _draw(6)]
