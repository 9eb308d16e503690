"""Finding review definitions and instances from what someone typed."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.errors import NotFound
from handlers.reviews.definitions import ReviewSpec
from storage.models import ReviewDefinition, ReviewInstance
from vocab.states import ReviewStatus


class UnknownReview(NotFound):
    code = "unknown_review"


async def find_definition(s: AsyncSession, review_id: str) -> tuple[ReviewDefinition, ReviewSpec]:
    row = await s.get(ReviewDefinition, review_id.strip().lower())
    if row is None:
        known = ", ".join(
            (
                await s.scalars(select(ReviewDefinition.id).order_by(ReviewDefinition.id).limit(20))
            ).all()
        )
        raise UnknownReview(f"There is no review {review_id!r}. Reviews: {known or 'none yet'}.")
    return row, ReviewSpec.from_mapping(row.spec)


async def open_instance_of(s: AsyncSession, review_id: str) -> ReviewInstance | None:
    return await s.scalar(
        select(ReviewInstance)
        .where(
            ReviewInstance.definition_id == review_id,
            ReviewInstance.status == ReviewStatus.IN_PROGRESS,
        )
        .order_by(ReviewInstance.number)
    )


async def find_instance(s: AsyncSession, review_id: str, number: int | None) -> ReviewInstance:
    """Instance `number` of a review, or its latest when number is None."""
    query = select(ReviewInstance).where(ReviewInstance.definition_id == review_id)
    query = (
        query.where(ReviewInstance.number == number)
        if number is not None
        else query.order_by(ReviewInstance.number.desc()).limit(1)
    )
    instance = await s.scalar(query)
    if instance is None:
        which = f"instance {number}" if number is not None else "any instance yet"
        raise UnknownReview(f"Review {review_id} has no {which}.")
    return instance
