"""Reminders halfway through an instance and one day before its end, to every reviewer who
still has items to decide: a fresh copy of their card, redrawn with the others later."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cards import views as v
from handlers.records import SYSTEM_ACTOR, audit
from handlers.reviews.cards import send_cards
from handlers.reviews.load import find_definition
from storage.models import ReviewInstance, ReviewItem, ReviewReviewer, Timer
from vocab.states import ReviewDecision, ReviewStatus


async def remind_due(s: AsyncSession, timers: Sequence[Timer], now: datetime) -> None:
    for timer in timers:
        instance = await s.get(ReviewInstance, timer.subject_id or 0)
        if instance is None or instance.status != ReviewStatus.IN_PROGRESS:
            continue
        _, spec = await find_definition(s, instance.definition_id)
        waiting = list(
            await s.scalars(
                select(ReviewReviewer.reviewer_id)
                .distinct()
                .join(ReviewItem, ReviewItem.id == ReviewReviewer.item_id)
                .where(
                    ReviewReviewer.instance_id == instance.id,
                    ReviewItem.decision == ReviewDecision.NOT_REVIEWED,
                )
                .order_by(ReviewReviewer.reviewer_id)
            )
        )
        if not waiting:
            continue
        await send_cards(
            s,
            spec=spec,
            instance=instance,
            reviewer_ids=waiting,
            now=now,
            headline=f"Reminder: {spec.name} ends "
            f"{v.when(instance.ends_at.isoformat())}; "
            "some of your items are still open.",
        )
        await audit(
            s,
            at=now,
            actor=SYSTEM_ACTOR,
            action="review.reminded",
            target=f"{spec.id}#{instance.number}",
            reviewers=len(waiting),
            timer=timer.key,
        )
