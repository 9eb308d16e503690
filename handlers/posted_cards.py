"""Cards that a chat answered with directly, and approval cards an approver never got.

A Teams requester's answer to `activate` IS their request card (with Cancel), so it is
remembered like a delivered card and redrawn in place after the decision; the outbox copy of
the same card is then not posted. An approver who could not be reached when a request was
made (no Teams conversation yet) gets the cards still waiting for them when they first talk
to the bot.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cards import views as v
from cards.views import Notification
from handlers.clock import Clock
from handlers.directory import approvers_for, settings_of
from handlers.durations import format_duration
from handlers.present import request_view, role_ref
from storage.models import OutboxMessage, PostedMessage, Principal, ScheduleRequest
from storage.uow import UnitOfWork
from vocab.states import Status

# How long the outbox holds a requester's card back for the chat answer to be remembered.
# Milliseconds in practice (commit, answer, note); short, since a held card also holds back
# the redraws of that request's cards.
ANSWER_GRACE = timedelta(seconds=3)


async def remember_answer_card(
    uow: UnitOfWork,
    clock: Clock,
    *,
    request_id: str,
    transport: str,
    email: str,
    ref: dict[str, Any],
) -> None:
    async with uow.transaction() as s:
        req = await s.scalar(select(ScheduleRequest).where(ScheduleRequest.short_id == request_id))
        if req is None or req.principal.email != email:
            return
        s.add(
            PostedMessage(
                request_id=req.id,
                transport=transport,
                kind=v.SUBMITTED,
                recipient_id=req.principal_id,
                ref=ref,
                created_at=clock.now(),
            )
        )


async def answer_card_state(
    uow: UnitOfWork, *, request_id: int, transport: str, recipient_id: int, now: datetime
) -> str:
    """ "answered": the chat's answer is the card; "soon": it may still be remembered (the
    request is seconds old); "no": post the card."""
    async with uow.read() as s:
        posted = await s.scalar(
            select(PostedMessage.id)
            .where(
                PostedMessage.request_id == request_id,
                PostedMessage.transport == transport,
                PostedMessage.kind == v.SUBMITTED,
                PostedMessage.recipient_id == recipient_id,
                PostedMessage.outbox_id.is_(None),
            )
            .limit(1)
        )
        if posted is not None:
            return "answered"
        created = await s.scalar(
            select(ScheduleRequest.created_at).where(ScheduleRequest.id == request_id)
        )
    return "soon" if created is not None and now - created < ANSWER_GRACE else "no"


async def queue_missed_approval_cards(
    session: AsyncSession, *, principal_id: int, transport: str, now: datetime
) -> int:
    """Queue, for `transport` only, the approval cards of every pending request this person
    may decide and has no card for there yet. Returns how many."""
    me = await session.get(Principal, principal_id)
    if me is None:
        return 0
    pending = (
        await session.scalars(
            select(ScheduleRequest)
            .where(
                ScheduleRequest.status == Status.PENDING_APPROVAL,
                ScheduleRequest.principal_id != principal_id,
            )
            .order_by(ScheduleRequest.id)
        )
    ).unique()
    have = set(
        (
            await session.scalars(
                select(PostedMessage.request_id).where(
                    PostedMessage.transport == transport,
                    PostedMessage.recipient_id == principal_id,
                    PostedMessage.kind == v.APPROVAL_NEEDED,
                )
            )
        ).all()
    )
    queued = 0
    for req in pending:
        deciders = await approvers_for(
            session, settings=settings_of(req.role), requester_id=req.principal_id
        )
        if req.id in have or all(p.id != principal_id for p in deciders):
            continue
        view = await request_view(session, req)
        note = Notification(
            kind=v.APPROVAL_NEEDED,
            request=view,
            role=role_ref(req.role),
            headline=f"{req.principal.display_name} asks for {req.role.display_name} for "
            f"{format_duration(timedelta(seconds=req.duration_seconds or 0))}.",
        )
        session.add(
            OutboxMessage(
                created_at=now,
                transport=transport,
                recipient_id=principal_id,
                kind=v.APPROVAL_NEEDED,
                request_id=req.id,
                payload=note.to_dict(),
                next_attempt_at=now,
            )
        )
        queued += 1
    return queued
