"""A reviewer's decision on one item: the first decision wins, and nobody reviews their own
access unless the review says `reviewers: self`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cards.views import ReviewCardView
from handlers.clock import Clock
from handlers.directory import require_principal
from handlers.errors import (
    AlreadyDecided,
    InvalidInput,
    JustificationRequired,
    NotFound,
    PimError,
    SelfApprovalForbidden,
)
from handlers.records import audit
from handlers.reviews.cards import item_view, items_query, redraw_cards, reviewer_cards
from handlers.reviews.definitions import ReviewSpec
from handlers.reviews.load import find_definition
from handlers.user_text import user_text
from storage.models import Principal, ReviewInstance, ReviewItem, ReviewReviewer
from storage.uow import UnitOfWork
from vocab.limits import MAX_JUSTIFICATION
from vocab.states import ReviewDecision, ReviewStatus

_VERBS = {
    ReviewDecision.APPROVE: "approve",
    ReviewDecision.DENY: "deny",
    ReviewDecision.DONT_KNOW: "dontknow",
}


class NotAReviewer(PimError):
    code = "not_a_reviewer"


class ReviewClosed(PimError):
    code = "review_closed"


async def decide_item(
    uow: UnitOfWork,
    clock: Clock,
    *,
    actor: str,
    item_id: int,
    decision: ReviewDecision,
    reason: str | None = None,
    check_only: bool = False,
) -> ReviewCardView:
    """Record a decision and redraw every reviewer's card that shows the item; returns the
    actor's card. A refused attempt is audited (and committed) before the error is raised.
    check_only: run every check but decide nothing (a transport asks before opening a form)."""
    now = clock.now()
    reason = user_text(reason, what="reason")
    if reason and len(reason) > MAX_JUSTIFICATION:
        raise InvalidInput(f"The reason is too long (at most {MAX_JUSTIFICATION}).")
    if decision == ReviewDecision.NOT_REVIEWED:
        raise InvalidInput("Decide approve, deny or dontknow.")
    async with uow.transaction() as s:
        me = await require_principal(s, actor)
        item = await s.get(ReviewItem, item_id)
        if item is None:
            raise NotFound(f"There is no review item {item_id}.")
        instance = await s.get(ReviewInstance, item.instance_id)
        assert instance is not None
        _, spec = await find_definition(s, instance.definition_id)
        refusal = await _refusal(s, me=me, item=item, spec=spec)
        if refusal is None:
            if instance.status != ReviewStatus.IN_PROGRESS:
                raise ReviewClosed(
                    f"{spec.name} #{instance.number} has ended; its decisions are final."
                )
            if item.decision != ReviewDecision.NOT_REVIEWED:
                raise AlreadyDecided(await _already(s, item_id))
            if check_only:
                cards = await reviewer_cards(s, spec=spec, instance=instance, reviewer_ids=[me.id])
                return cards[me.id]
            _need_reason(spec, decision, reason, item_id)
            return await _record(
                s,
                me=me,
                item=item,
                instance=instance,
                spec=spec,
                decision=decision,
                reason=reason,
                now=now,
            )
        await audit(
            s,
            at=now,
            actor=me,
            action="review.refused",
            target=f"{spec.id}#{instance.number}",
            item=item.id,
            reason=refusal.code,
            attempted=_VERBS[decision],
        )
    raise refusal


def _need_reason(
    spec: ReviewSpec, decision: ReviewDecision, reason: str | None, item_id: int
) -> None:
    if reason:
        return
    verb = _VERBS[decision]
    if spec.require_reason:
        raise JustificationRequired(
            f"{spec.name} asks for a reason on every decision: review {item_id} {verb} <reason>"
        )
    if decision == ReviewDecision.DENY:
        raise JustificationRequired(f"Say why you deny it: review {item_id} deny <reason>")


async def _refusal(
    s: AsyncSession, *, me: Principal, item: ReviewItem, spec: ReviewSpec
) -> PimError | None:
    if item.principal_id == me.id and not spec.self_review:
        return SelfApprovalForbidden("You cannot review your own access.")
    mine = await s.scalar(
        select(
            exists().where(ReviewReviewer.item_id == item.id, ReviewReviewer.reviewer_id == me.id)
        )
    )
    if not mine:
        return NotAReviewer(f"You are not a reviewer of item {item.id} in {spec.name}.")
    return None


async def _record(
    s: AsyncSession,
    *,
    me: Principal,
    item: ReviewItem,
    instance: ReviewInstance,
    spec: ReviewSpec,
    decision: ReviewDecision,
    reason: str | None,
    now: datetime,
) -> ReviewCardView:
    # The guard on decision is what makes concurrent clicks safe: only one UPDATE matches,
    # whichever reviewer, platform or replica it came from.
    result = await s.execute(
        update(ReviewItem)
        .where(ReviewItem.id == item.id, ReviewItem.decision == ReviewDecision.NOT_REVIEWED)
        .values(decision=decision, reason=reason, decided_by_id=me.id, decided_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise AlreadyDecided(await _already(s, item.id))
    person = await s.get(Principal, item.principal_id)
    await audit(
        s,
        at=now,
        actor=me,
        action="review.decided",
        target=f"{person.email if person else item.principal_id}/{item.role_id}",
        review=spec.id,
        instance=instance.number,
        item=item.id,
        decision=decision,
        reason=reason,
        recommendation=item.recommendation,
    )
    reviewers = list(
        await s.scalars(select(ReviewReviewer.reviewer_id).where(ReviewReviewer.item_id == item.id))
    )
    cards = await redraw_cards(s, spec=spec, instance=instance, reviewer_ids=reviewers, now=now)
    return cards[me.id]


async def _already(s: AsyncSession, item_id: int) -> str:
    row = (await s.execute(items_query().where(ReviewItem.id == item_id))).one()
    view = item_view(row)
    return (
        f"Item {item_id} ({view.person.name}, {view.role.name}) is already decided: "
        f"{view.outcome_line()}."
    )
