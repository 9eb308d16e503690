"""The delivery worker: claims outbox rows, hands them to the running transports, records
where each card landed, and retries failures with backoff.

Three promises, and where each is kept:
- Once: a row is claimed by one worker at a time (storage.claims); a send that may have gone
  out before a crash or a timeout is marked (`attempted_at`), and the next attempt hands the
  transport `resumed_since` so it can look before posting again (Slack does, by metadata).
- In order: a message to a person (or channel) waits while an earlier one to them over the
  same transport is pending, sending or retrying (storage.claims). A message that ends
  Undeliverable, or failed after MAX_ATTEMPTS, no longer holds the next one back.
- Fast: up to `concurrency` sends run at once, and claims are topped up as sends finish.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cards import views as v
from cards.views import Notification
from handlers.clock import Clock
from storage.claims import claim_outbox, fan_out, mark_attempted, mark_sent
from storage.models import OutboxMessage, PostedMessage, Principal
from storage.uow import UnitOfWork
from vocab.states import OutboxStatus

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
LEASE = timedelta(seconds=60)
# Cards that are redrawn later, so where they were posted is remembered.
TRACKED_KINDS = {v.APPROVAL_NEEDED, v.SUBMITTED, v.REVIEW_CARD}
# Redraws of every posted copy of a card: by request, or by the card's own name.
UPDATE_KINDS = {v.REQUEST_UPDATE, v.REVIEW_UPDATE}


class RetryLater(Exception):
    """A transport's way to say "not now", e.g. Slack's 429 with Retry-After.

    sent_nothing=True when the platform refused the message itself, so it cannot have gone
    out: the next attempt need not look for it before posting."""

    def __init__(self, seconds: float, reason: str = "", *, sent_nothing: bool = False) -> None:
        super().__init__(reason or f"retry in {seconds}s")
        self.seconds = seconds
        self.sent_nothing = sent_nothing


class Undeliverable(Exception):
    """This transport can never deliver this message (e.g. no such Slack user): stop trying."""


@dataclass(frozen=True, slots=True)
class Recipient:
    id: int
    email: str
    name: str
    slack_id: str | None
    teams_id: str | None


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    kind: str
    note: Notification
    request_id: int | None
    recipient: Recipient | None
    channel: dict[str, str] | None
    # for REQUEST_UPDATE / REVIEW_UPDATE: every place this transport posted those cards
    posted: tuple[dict[str, Any], ...] = ()
    card: str | None = None  # the name of a card redrawn by name (a reviewer's card)
    # set when an earlier attempt (since this time) may have posted it: a crash mid-send, or
    # a failure that left it unknown. A transport that can, looks before posting again.
    resumed_since: datetime | None = None


class Transport(Protocol):
    name: str

    def reaches(self, recipient: Recipient | None, channel: dict[str, str] | None) -> bool: ...

    async def send(self, delivery: Delivery) -> dict[str, Any] | None:
        """Post a message; return a reference to update it later (or None)."""

    async def update(self, delivery: Delivery) -> None:
        """Redraw every posted copy listed in delivery.posted."""


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(600, 2 ** min(attempts, 10)))


@dataclass(slots=True)
class _Outcome:
    transport: str
    delivery: Delivery
    ref: dict[str, Any] | None = None
    error: Exception | None = None


class OutboxWorker:
    def __init__(
        self,
        uow: UnitOfWork,
        clock: Clock,
        transports: list[Transport],
        *,
        worker: str,
        batch: int = 100,
        concurrency: int = 64,
        max_seconds: float = 5.0,
        on_failure: Callable[[str, str], None] | None = None,
    ) -> None:
        self.uow, self.clock, self.worker, self.batch = uow, clock, worker, batch
        self.transports = {t.name: t for t in transports}
        self.concurrency = max(1, concurrency)
        # run_once stops claiming after this long, so timers (run by the same sweeper) are
        # not kept waiting by a long burst; what is left is due, and the sweeper comes back.
        self.max_seconds = max_seconds
        # Told (transport, reason) of each failed attempt: the metrics count them.
        self.on_failure = on_failure or (lambda transport, reason: None)

    async def run_once(self) -> int:
        """Deliver what is due now, up to `concurrency` sends at a time; return how many
        went out. Claims are topped up as sends finish (in the transaction that records
        them), so a claimed row starts at once and never sits out its lease in a queue."""
        started = time.monotonic()
        running: set[asyncio.Task[_Outcome]] = set()
        finished: list[_Outcome] = []
        sent, look = 0, True
        try:
            while True:
                in_time = time.monotonic() - started < self.max_seconds
                room = min(self.concurrency - len(running), self.batch) if look and in_time else 0
                if finished or room > 0:
                    work, more = await self._settle_and_claim(finished, limit=room)
                    sent += sum(1 for o in finished if o.error is None)
                    finished = []
                    running.update(asyncio.create_task(self._deliver(name, d)) for name, d in work)
                    if room > 0:
                        look = more
                if not running:
                    if look and in_time:
                        continue
                    return sent
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                finished.extend(task.result() for task in done)
                look = True  # a finished send may let the next message to that person go
        finally:
            if running:  # we are failing: let sends end; their rows' leases bring them back
                await asyncio.wait(running)

    async def _settle_and_claim(
        self, finished: list[_Outcome], *, limit: int
    ) -> tuple[list[tuple[str, Delivery]], bool]:
        """Record finished sends, fan out up to `batch` new rows, and claim up to `limit`
        sends, in one transaction. Fanning out uses no send slot, so it goes by the batch."""
        now = self.clock.now()
        async with self.uow.transaction() as s:
            if finished:
                await self._record(s, finished, now)
            if limit <= 0:
                return [], False
            lease = now + LEASE
            fresh = await claim_outbox(
                s,
                now=now,
                worker=self.worker,
                lease_until=lease,
                limit=self.batch,
                transports=["*"],
            )
            await self._fan_out(s, fresh, now)
            rows = await claim_outbox(
                s,
                now=now,
                worker=self.worker,
                lease_until=lease,
                limit=limit,
                transports=list(self.transports),
            )
            people = await _recipients(s, rows)
            work = [
                d
                for m in rows
                if (d := await self._prepare(s, m, now, people.get(m.recipient_id or 0)))
                is not None
            ]
            await mark_attempted(s, ids=[d.id for _, d in work], now=now)
        # a full claim, or '*' rows left to fan out: there may be more to send now
        return work, len(fresh) == self.batch or len(rows) == limit

    async def _fan_out(self, s: AsyncSession, rows: list[OutboxMessage], now: datetime) -> None:
        """Fan out once, inside the claim, so each transport retries on its own."""
        people = await _recipients(s, rows)
        copies: list[dict[str, Any]] = []
        fanned: list[int] = []
        unreachable: list[int] = []
        for m in rows:
            recipient = people.get(m.recipient_id or 0)
            broadcast = m.recipient_id is None and m.channel is None  # a card redraw
            targets = [
                t for t in self.transports.values() if broadcast or t.reaches(recipient, m.channel)
            ]
            copies += [
                {
                    "created_at": now,
                    "transport": t.name,
                    "parent_id": m.id,
                    "recipient_id": m.recipient_id,
                    "channel": m.channel,
                    "kind": m.kind,
                    "request_id": m.request_id,
                    "card": m.card,
                    "payload": m.payload,
                    "status": OutboxStatus.PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                }
                for t in targets
            ]
            (fanned if targets else unreachable).append(m.id)
        await fan_out(s, now=now, copies=copies, fanned=fanned, unreachable=unreachable)

    async def _prepare(
        self, s: AsyncSession, m: OutboxMessage, now: datetime, recipient: Recipient | None
    ) -> tuple[str, Delivery] | None:
        posted: tuple[dict[str, Any], ...] = ()
        if m.kind in UPDATE_KINDS and (m.request_id is not None or m.card is not None):
            if await _cards_in_flight(s, m, m.parent_id or m.id):
                m.status, m.next_attempt_at = OutboxStatus.PENDING, now + timedelta(seconds=1)
                return None
            same = (
                (PostedMessage.card == m.card)
                if m.card is not None
                else (PostedMessage.request_id == m.request_id)
            )
            posted = tuple(
                (
                    await s.scalars(
                        select(PostedMessage.ref)
                        .where(
                            same,
                            PostedMessage.transport == m.transport,
                        )
                        .order_by(PostedMessage.id)
                    )
                ).all()
            )
        return m.transport, Delivery(
            id=m.id,
            kind=m.kind,
            note=Notification.from_dict(m.payload),
            request_id=m.request_id,
            recipient=recipient,
            channel=m.channel,
            posted=posted,
            resumed_since=m.attempted_at,  # as it was before this claim (mark_attempted)
            card=m.card,
        )

    async def _deliver(self, transport_name: str, delivery: Delivery) -> _Outcome:
        transport = self.transports[transport_name]
        outcome = _Outcome(transport_name, delivery)
        try:
            if delivery.kind in UPDATE_KINDS:
                await transport.update(delivery)
            else:
                outcome.ref = await transport.send(delivery)
        except (RetryLater, Undeliverable) as err:
            outcome.error = err
            self.on_failure(
                transport_name, "retry" if isinstance(err, RetryLater) else "undeliverable"
            )
        except Exception as err:  # the network edge: any failure is retried, never lost
            logger.warning("delivery %s via %s failed: %s", delivery.id, transport_name, err)
            outcome.error = err
            self.on_failure(transport_name, "error")
        return outcome

    async def _record(self, s: AsyncSession, finished: list[_Outcome], now: datetime) -> None:
        ids = [o.delivery.id for o in finished]
        rows = {
            m.id: m
            for m in (await s.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(ids)))).all()
        }
        await mark_sent(
            s,
            ids=[o.delivery.id for o in finished if o.error is None and o.delivery.id in rows],
            now=now,
        )
        for o in finished:
            m = rows.get(o.delivery.id)
            if m is None:
                continue
            if o.error is None:
                if o.ref is not None and o.delivery.kind in TRACKED_KINDS:
                    recipient = o.delivery.recipient
                    s.add(
                        PostedMessage(
                            request_id=o.delivery.request_id,
                            card=o.delivery.card,
                            outbox_id=m.id,
                            transport=o.transport,
                            kind=o.delivery.kind,
                            ref=o.ref,
                            created_at=now,
                            recipient_id=recipient.id if recipient else None,
                        )
                    )
            else:
                _failed(m, o.error, now)


def _failed(m: OutboxMessage, err: Exception, now: datetime) -> None:
    # Being told to slow down (429) is not a failure: it does not use up attempts.
    if isinstance(err, RetryLater):
        if err.sent_nothing:
            m.attempted_at = None
    else:
        m.attempts += 1
    m.last_error = f"{type(err).__name__}: {err}"[:2000]
    if isinstance(err, Undeliverable):
        m.status = OutboxStatus.UNREACHABLE
        logger.warning("delivery %s via %s: %s", m.id, m.transport, err)
    elif m.attempts >= MAX_ATTEMPTS:
        m.status = OutboxStatus.FAILED
        logger.error("giving up on delivery %s after %s attempts", m.id, m.attempts)
    else:
        m.status = OutboxStatus.PENDING
        wait = (
            timedelta(seconds=err.seconds) if isinstance(err, RetryLater) else _backoff(m.attempts)
        )
        m.next_attempt_at = now + wait


async def _recipients(s: AsyncSession, rows: list[OutboxMessage]) -> dict[int, Recipient]:
    """Everyone these rows go to, in one query."""
    ids = {m.recipient_id for m in rows if m.recipient_id is not None}
    if not ids:
        return {}
    people = (await s.scalars(select(Principal).where(Principal.id.in_(ids)))).all()
    return {
        p.id: Recipient(
            id=p.id, email=p.email, name=p.display_name, slack_id=p.slack_id, teams_id=p.teams_id
        )
        for p in people
    }


async def _cards_in_flight(s: AsyncSession, m: OutboxMessage, before: int) -> bool:
    # An update that overtakes the card it redraws would find nothing to redraw.
    # `before` is the id of the update's original ('*') row. Compare original rows, not the
    # fanned-out copies: two workers fanning out concurrently (PostgreSQL) can give a card's
    # copy a higher id than the update's copy.
    same = (
        (OutboxMessage.card == m.card)
        if m.card is not None
        else (OutboxMessage.request_id == m.request_id)
    )
    count = await s.scalar(
        select(func.count(OutboxMessage.id)).where(
            same,
            OutboxMessage.transport.in_([m.transport, "*"]),
            OutboxMessage.kind.in_(list(TRACKED_KINDS)),
            OutboxMessage.status.in_([OutboxStatus.PENDING, OutboxStatus.SENDING]),
            func.coalesce(OutboxMessage.parent_id, OutboxMessage.id) < before,
        )
    )
    return bool(count)
