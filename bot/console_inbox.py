"""The console's transport: delivers to whoever sits at the terminal. Everyone else's messages
stay in the outbox table (their inbox), so switching to them with `as EMAIL` shows them, in
this run or a later one.

A message for someone who is not at the console is refused with RetryLater (nothing went
out, no attempt used): the outbox keeps it, and keeps that person's later messages behind it,
in order. `release` makes them due at once when that person sits down.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update

from bot.outbox import Delivery, Recipient, RetryLater
from cards import views as v
from cards.text import render
from storage.models import OutboxMessage, Principal
from storage.uow import UnitOfWork
from vocab.states import OutboxStatus

# Long enough not to spin; `release` brings the messages back the moment they are wanted.
_HOLD_SECONDS = 3600.0


class ConsoleTransport:
    name = "console"

    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.current: str | None = None
        # What this person was just answered directly, so the same news is not told twice:
        # requests whose "waiting for approval" reply they saw, and reply texts.
        self.answered_requests: set[str] = set()
        self.answered_texts: set[tuple[str, str]] = set()
        self._redrawn: set[tuple[int, str]] = set()

    def reaches(self, recipient: Recipient | None, channel: dict[str, str] | None) -> bool:
        return recipient is not None

    def answered(self, *, email: str, text: str, request: v.RequestView | None) -> None:
        self.answered_texts.add((email, text))
        if request is not None and request.requester.email == email:
            self.answered_requests.add(request.id)

    async def send(self, delivery: Delivery) -> dict[str, Any] | None:
        assert delivery.recipient is not None
        email = delivery.recipient.email
        if email != self.current:
            raise RetryLater(_HOLD_SECONDS, f"{email} is not at the console", sent_nothing=True)
        note = delivery.note
        if self._told_already(email, note):
            return None  # nothing posted, so nothing to redraw either
        self.out(render(note))
        return {"email": email}

    def _told_already(self, email: str, note: v.Notification) -> bool:
        if (email, note.headline) in self.answered_texts:
            return True
        req = note.request
        if note.details:  # e.g. where the access is being granted: the answer did not say
            return False
        # The answer already said it was waiting, or that it is active and until when.
        answered = (
            (v.SUBMITTED, v.ACTIVATED)
            if req is not None and req.decision is None
            else (v.SUBMITTED,)
        )
        return note.kind in answered and req is not None and req.id in self.answered_requests

    async def update(self, delivery: Delivery) -> None:
        req, review = delivery.note.request, delivery.note.review
        label = req.id if req else f"“{review.name}”" if review else "a request"
        decider = req.decision.by.email if req and req.decision and req.decision.by else None
        absent = False
        for ref in delivery.posted:
            email = ref["email"]
            if email == decider or (delivery.id, email) in self._redrawn:
                continue  # the decider read the outcome in their own answer
            if email != self.current:
                absent = True
                continue
            self._redrawn.add((delivery.id, email))
            self.out(f"🔄 Card {label} updated: {delivery.note.headline}")
        if absent:
            raise RetryLater(
                _HOLD_SECONDS, "a card's owner is not at the console", sent_nothing=True
            )


async def release(uow: UnitOfWork, *, email: str, now: datetime) -> None:
    """Make the messages waiting for `email` (and card redraws) due now."""
    async with uow.transaction() as s:
        person = await s.scalar(select(Principal.id).where(Principal.email == email))
        await s.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.transport == ConsoleTransport.name,
                OutboxMessage.status == OutboxStatus.PENDING,
                or_(OutboxMessage.recipient_id == person, OutboxMessage.kind == v.REQUEST_UPDATE),
            )
            .values(next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )
