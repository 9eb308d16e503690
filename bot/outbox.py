"""The delivery worker: claims outbox rows, hands them to the running transports, records
where each card landed, and retries failures with backoff."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cards import views as v
from cards.views import Notification
from handlers.clock import Clock
from storage.claims import claim_outbox
from storage.models import OutboxMessage, PostedMessage, Principal
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
LEASE = timedelta(seconds=60)
# Cards that are redrawn later, so where they were posted is remembered.
TRACKED_KINDS = {v.APPROVAL_NEEDED, v.SUBMITTED}


class RetryLater(Exception):
    """A transport's way to say "not now", e.g. Slack's 429 with Retry-After."""

    def __init__(self, seconds: float, reason: str = "") -> None:
        super().__init__(reason or f"retry in {seconds}s")
        self.seconds = seconds


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
    # for REQUEST_UPDATE: every place this transport posted the request's cards
    posted: tuple[dict[str, Any], ...] = ()


class Transport(Protocol):
    name: str

    def reaches(self, recipient: Recipient | None, channel: dict[str, str] | None) -> bool: ...

    async def send(self, delivery: Delivery) -> dict[str, Any] | None:
        """Post a message; return a reference to update it later (or None)."""

    async def update(self, delivery: Delivery) -> None:
        """Redraw every posted copy listed in delivery.posted."""


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(600, 2 ** min(attempts, 10)))


class OutboxWorker:
    def __init__(
        self, uow: UnitOfWork, clock: Clock, transports: list[Transport], *, worker: str,
        batch: int = 50,
    ) -> None:
        self.uow, self.clock, self.worker, self.batch = uow, clock, worker, batch
        self.transports = {t.name: t for t in transports}

    async def run_once(self) -> int:
        """Deliver everything due now; return how many messages went out."""
        sent = 0
        while True:
            now = self.clock.now()
            async with self.uow.transaction() as s:
                rows = await claim_outbox(
                    s, now=now, worker=self.worker, lease_until=now + LEASE, limit=self.batch,
                    transports=list(self.transports),
                )
                work = [d for m in rows if (d := await self._prepare(s, m, now)) is not None]
                # '*' rows just fanned out into per-transport rows that are due now too.
                fanned = any(m.transport == "*" and m.status == "fanned" for m in rows)
            for transport_name, delivery in work:
                sent += await self._deliver(transport_name, delivery)
            if len(rows) < self.batch and not fanned:
                return sent

    async def _prepare(
        self, s: AsyncSession, m: OutboxMessage, now: datetime
    ) -> tuple[str, Delivery] | None:
        recipient = await _recipient(s, m.recipient_id)
        if m.transport == "*":
            # Fan out once, inside the claim, so each transport retries on its own.
            broadcast = m.recipient_id is None and m.channel is None  # a card redraw
            targets = [t for t in self.transports.values()
                       if broadcast or t.reaches(recipient, m.channel)]
            for t in targets:
                s.add(OutboxMessage(
                    created_at=now, transport=t.name, parent_id=m.id,
                    recipient_id=m.recipient_id, channel=m.channel, kind=m.kind,
                    request_id=m.request_id, payload=m.payload, next_attempt_at=now,
                ))
            m.status = "fanned" if targets else "unreachable"
            m.next_attempt_at = now
            return None
        if m.kind == v.REQUEST_UPDATE and m.request_id is not None:
            if await _cards_in_flight(s, m.request_id, m.transport, m.parent_id or m.id):
                m.status, m.next_attempt_at = "pending", now + timedelta(seconds=1)
                return None
            posted = tuple((await s.scalars(select(PostedMessage.ref).where(
                PostedMessage.request_id == m.request_id, PostedMessage.transport == m.transport,
            ).order_by(PostedMessage.id))).all())
        else:
            posted = ()
        return m.transport, Delivery(
            id=m.id, kind=m.kind, note=Notification.from_dict(m.payload),
            request_id=m.request_id, recipient=recipient, channel=m.channel, posted=posted,
        )

    async def _deliver(self, transport_name: str, delivery: Delivery) -> int:
        transport = self.transports[transport_name]
        try:
            if delivery.kind == v.REQUEST_UPDATE:
                await transport.update(delivery)
                ref = None
            else:
                ref = await transport.send(delivery)
        except RetryLater as err:
            await self._failed(delivery, err, wait=timedelta(seconds=err.seconds))
            return 0
        except Undeliverable as err:
            await self._failed(delivery, err, wait=None, final=True)
            return 0
        except Exception as err:  # the network edge: any failure is retried, never lost
            logger.warning("delivery %s via %s failed: %s", delivery.id, transport_name, err)
            await self._failed(delivery, err, wait=None)
            return 0
        now = self.clock.now()
        async with self.uow.transaction() as s:
            m = await s.get(OutboxMessage, delivery.id)
            if m is not None:
                m.status, m.sent_at = "sent", now
            if ref is not None and delivery.kind in TRACKED_KINDS:
                s.add(PostedMessage(
                    request_id=delivery.request_id, outbox_id=delivery.id,
                    transport=transport_name, kind=delivery.kind, ref=ref, created_at=now,
                    recipient_id=delivery.recipient.id if delivery.recipient else None,
                ))
        return 1

    async def _failed(
        self, delivery: Delivery, err: Exception, *, wait: timedelta | None, final: bool = False
    ) -> None:
        now = self.clock.now()
        async with self.uow.transaction() as s:
            m = await s.get(OutboxMessage, delivery.id)
            if m is None:
                return
            # Being told to slow down (429) is not a failure: it does not use up attempts.
            if not isinstance(err, RetryLater):
                m.attempts += 1
            m.last_error = f"{type(err).__name__}: {err}"[:2000]
            if final:
                m.status = "unreachable"
                logger.warning("delivery %s via %s: %s", m.id, m.transport, err)
            elif m.attempts >= MAX_ATTEMPTS:
                m.status = "failed"
                logger.error("giving up on delivery %s after %s attempts", m.id, m.attempts)
            else:
                m.status = "pending"
                m.next_attempt_at = now + (wait if wait is not None else _backoff(m.attempts))


async def _recipient(s: AsyncSession, principal_id: int | None) -> Recipient | None:
    if principal_id is None:
        return None
    p = await s.get(Principal, principal_id)
    if p is None:
        return None
    return Recipient(id=p.id, email=p.email, name=p.display_name, slack_id=p.slack_id,
                     teams_id=p.teams_id)


async def _cards_in_flight(s: AsyncSession, request_id: int, transport: str, before: int) -> bool:
    # An update that overtakes the card it redraws would find nothing to redraw.
    # `before` is the id of the update's original ('*') row. Compare original rows, not the
    # fanned-out copies: two workers fanning out concurrently (PostgreSQL) can give a card's
    # copy a higher id than the update's copy.
    count = await s.scalar(select(func.count(OutboxMessage.id)).where(
        OutboxMessage.request_id == request_id,
        OutboxMessage.transport.in_([transport, "*"]),
        OutboxMessage.kind.in_(list(TRACKED_KINDS)),
        OutboxMessage.status.in_(["pending", "sending"]),
        func.coalesce(OutboxMessage.parent_id, OutboxMessage.id) < before,
    ))
    return bool(count)
