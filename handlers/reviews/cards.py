"""A reviewer's card: a page of their items with their progress, sent when an instance opens
(and with each reminder), and redrawn everywhere it was posted after every decision.

Every posted copy of a reviewer's card carries the same name (`card_key`), so one outbox row
redraws all of them (bot.outbox looks the copies up by that name).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from cards import views as v
from cards.views import Notification, Person, ReviewCardView, ReviewItemView, RoleRef
from handlers.records import message_row
from handlers.reviews.definitions import LOOKBACK, ReviewSpec
from storage.models import (
    OutboxMessage,
    Principal,
    ReviewInstance,
    ReviewItem,
    ReviewReviewer,
    Role,
)
from vocab.states import ReviewDecision, ReviewStatus

PAGE = 8  # undecided items on a card; the rest wait for the next page (`reviews`)
RECENT = 3  # the reviewer's latest decisions, shown above them


def card_key(instance_id: int, reviewer_id: int) -> str:
    return f"review:{instance_id}:{reviewer_id}"


def recommendation_reason(decision: ReviewDecision | None, activations: int) -> str | None:
    days = LOOKBACK.days
    if decision == ReviewDecision.DENY:
        return f"no activation in {days} days"
    if decision == ReviewDecision.APPROVE:
        return f"activated {activations} time{'s' if activations != 1 else ''} in {days} days"
    return None


_DECIDER = aliased(Principal)
_ITEM_COLUMNS = (
    ReviewItem.id,
    ReviewItem.kind,
    ReviewItem.activations,
    ReviewItem.recommendation,
    ReviewItem.decision,
    ReviewItem.reason,
    ReviewItem.decided_at,
    Principal.email,
    Principal.display_name,
    Role.id.label("role_id"),
    Role.display_name.label("role_name"),
    _DECIDER.email.label("by_email"),
    _DECIDER.display_name.label("by_name"),
)


def item_view(row: Any) -> ReviewItemView:
    by = Person(email=row.by_email, name=row.by_name) if row.by_email else None
    return ReviewItemView(
        id=row.id,
        person=Person(email=row.email, name=row.display_name),
        role=RoleRef(id=row.role_id, name=row.role_name),
        kind=row.kind,
        recommendation=row.recommendation,
        recommendation_reason=recommendation_reason(row.recommendation, row.activations),
        decision=row.decision,
        decided_by=by,
        decided_at=row.decided_at.isoformat() if row.decided_at else None,
        reason=row.reason,
    )


def items_query() -> Any:
    return (
        select(*_ITEM_COLUMNS)
        .join(Principal, Principal.id == ReviewItem.principal_id)
        .join(Role, Role.id == ReviewItem.role_id)
        .outerjoin(_DECIDER, _DECIDER.id == ReviewItem.decided_by_id)
    )


async def reviewer_cards(
    s: AsyncSession,
    *,
    spec: ReviewSpec,
    instance: ReviewInstance,
    reviewer_ids: Iterable[int],
) -> dict[int, ReviewCardView]:
    ids = list(reviewer_ids)
    undecided = ReviewItem.decision == ReviewDecision.NOT_REVIEWED
    progress = {
        row.reviewer_id: (row.total, row.decided)
        for row in await s.execute(
            select(
                ReviewReviewer.reviewer_id,
                func.count().label("total"),
                func.sum(case((undecided, 0), else_=1)).label("decided"),
            )
            .join(ReviewItem, ReviewItem.id == ReviewReviewer.item_id)
            .where(ReviewReviewer.instance_id == instance.id, ReviewReviewer.reviewer_id.in_(ids))
            .group_by(ReviewReviewer.reviewer_id)
        )
    }
    out: dict[int, ReviewCardView] = {}
    for rid in ids:
        mine = (
            items_query()
            .join(ReviewReviewer, ReviewReviewer.item_id == ReviewItem.id)
            .where(ReviewReviewer.reviewer_id == rid, ReviewReviewer.instance_id == instance.id)
        )
        total, decided = progress.get(rid, (0, 0))
        todo = (
            (await s.execute(mine.where(undecided).order_by(ReviewItem.id).limit(PAGE))).all()
            if decided != total
            else []
        )
        done = (
            (
                await s.execute(
                    mine.where(~undecided)
                    .order_by(ReviewItem.decided_at.desc(), ReviewItem.id.desc())
                    .limit(RECENT)
                )
            ).all()
            if decided
            else []
        )
        out[rid] = ReviewCardView(
            card=card_key(instance.id, rid),
            review_id=spec.id,
            name=spec.name,
            number=instance.number,
            ends_at=instance.ends_at.isoformat(),
            require_reason=spec.require_reason,
            items=tuple(item_view(r) for r in [*reversed(done), *todo]),
            total=int(total or 0),
            decided=int(decided or 0),
            open=instance.status == ReviewStatus.IN_PROGRESS,
        )
    return out


async def send_cards(
    s: AsyncSession,
    *,
    spec: ReviewSpec,
    instance: ReviewInstance,
    reviewer_ids: Iterable[int],
    now: datetime,
    headline: str,
) -> None:
    """A new copy of each reviewer's card, to them (the outbox fans it out per platform)."""
    cards = await reviewer_cards(s, spec=spec, instance=instance, reviewer_ids=reviewer_ids)
    # ORM rows, not one INSERT: the unit of work notices them and wakes the sweeper.
    s.add_all(
        OutboxMessage(
            **message_row(
                now=now,
                recipient_id=rid,
                note=Notification(kind=v.REVIEW_CARD, headline=headline, review=card),
            ),
            card=card.card,
        )
        for rid, card in cards.items()
    )


async def redraw_cards(
    s: AsyncSession,
    *,
    spec: ReviewSpec,
    instance: ReviewInstance,
    reviewer_ids: Iterable[int],
    now: datetime,
) -> dict[int, ReviewCardView]:
    """Redraw every posted copy of these reviewers' cards; returns the cards drawn."""
    cards = await reviewer_cards(s, spec=spec, instance=instance, reviewer_ids=reviewer_ids)
    s.add_all(
        OutboxMessage(
            **message_row(
                now=now,
                recipient_id=None,
                note=Notification(kind=v.REVIEW_UPDATE, headline=card.progress_line(), review=card),
            ),
            card=card.card,
        )
        for card in cards.values()
    )
    return cards
