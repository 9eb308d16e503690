"""Open reviews as lists: `reviews` in chat (my open items) and the digest (progress)."""

from __future__ import annotations

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cards.views import Ranked, ReviewsView, when
from handlers.directory import require_principal
from handlers.reviews.cards import reviewer_cards
from handlers.reviews.definitions import ReviewSpec
from storage.models import ReviewDefinition, ReviewInstance, ReviewItem, ReviewReviewer
from storage.uow import UnitOfWork
from vocab.states import ReviewDecision, ReviewStatus


async def my_reviews(uow: UnitOfWork, *, actor: str) -> ReviewsView:
    async with uow.read() as s:
        me = await require_principal(s, actor)
        mine = select(ReviewReviewer.instance_id).where(ReviewReviewer.reviewer_id == me.id)
        found = (
            await s.execute(
                select(ReviewInstance, ReviewDefinition.spec)
                .join(ReviewDefinition, ReviewDefinition.id == ReviewInstance.definition_id)
                .where(
                    ReviewInstance.status == ReviewStatus.IN_PROGRESS, ReviewInstance.id.in_(mine)
                )
                .order_by(ReviewInstance.ends_at, ReviewInstance.id)
            )
        ).all()
        cards = []
        for instance, spec in found:
            drawn = await reviewer_cards(
                s, spec=ReviewSpec.from_mapping(spec), instance=instance, reviewer_ids=[me.id]
            )
            cards.append(drawn[me.id])
    return ReviewsView(cards=tuple(cards))


async def open_reviews(s: AsyncSession) -> tuple[Ranked, ...]:
    """Each review in progress with how far its reviewers have got, for the digest."""
    decided = func.sum(case((ReviewItem.decision == ReviewDecision.NOT_REVIEWED, 0), else_=1))
    rows = await s.execute(
        select(
            ReviewDefinition.name,
            ReviewInstance.number,
            ReviewInstance.ends_at,
            func.count(ReviewItem.id),
            decided,
        )
        .join(ReviewDefinition, ReviewDefinition.id == ReviewInstance.definition_id)
        .outerjoin(ReviewItem, ReviewItem.instance_id == ReviewInstance.id)
        .where(ReviewInstance.status == ReviewStatus.IN_PROGRESS)
        .group_by(
            ReviewDefinition.name, ReviewInstance.number, ReviewInstance.ends_at, ReviewInstance.id
        )
        .order_by(ReviewInstance.ends_at, ReviewInstance.id)
    )
    return tuple(
        Ranked(
            label=f"{name} #{number}",
            value=f"{int(done or 0)} of {total} decided · ends {when(ends.isoformat())}",
        )
        for name, number, ends, total, done in rows
    )
