"""The end of an instance: every item gets its outcome, and with `auto_apply` the denied (and,
per `on_no_response`, the unanswered) assignments are removed, their people told why, and the
admins sent a summary.

Outcomes and removals are set-based UPDATEs; the removed assignments are then read a chunk at
a time for their audit events, notices and the grant hook, so memory stays bounded however
large the review. An item answered "Don't know" counts as unanswered here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from cards import views as v
from cards.views import Notification, RoleRef
from handlers.clock import Clock
from handlers.directory import admins
from handlers.errors import InvalidInput
from handlers.lifecycle import EXPIRE, WARN
from handlers.records import SYSTEM_ACTOR, audit, audit_all, message_row, notify, notify_all
from handlers.reviews.cards import recommendation_reason, redraw_cards
from handlers.reviews.definitions import ReviewSpec
from handlers.reviews.load import find_definition, open_instance_of
from handlers.reviews.schedule import cancel_instance_timers
from storage.audit import NewEvent
from storage.models import (
    Principal,
    ReviewInstance,
    ReviewItem,
    ReviewReviewer,
    Role,
    Schedule,
    Timer,
)
from storage.uow import UnitOfWork
from vocab.states import (
    ReviewDecision,
    ReviewOutcome,
    ReviewStatus,
    ScheduleKind,
    ScheduleState,
    TimerStatus,
)

logger = logging.getLogger(__name__)

# Called with the schedule ids a review removed, in the same transaction: the place where the
# grant engine revokes the real access behind them (wired by the composition root).
RemovalHook = Callable[[AsyncSession, Sequence[int], datetime], Awaitable[None]]
CHUNK = 500


async def end_review(
    uow: UnitOfWork,
    clock: Clock,
    *,
    actor: str,
    review_id: str,
    on_removed: RemovalHook | None = None,
) -> str:
    """`pim-bot review end ID`: close the open instance now and apply it."""
    now = clock.now()
    async with uow.transaction() as s:
        definition, spec = await find_definition(s, review_id)
        instance = await open_instance_of(s, definition.id)
        if instance is None:
            raise InvalidInput(
                f"{review_id} has no open instance; start one with pim-bot review start {review_id}"
            )
        return (
            await close_instance(
                s, spec=spec, instance=instance, now=now, actor=actor, on_removed=on_removed
            )
            or "Already closed."
        )


def close_action(on_removed: RemovalHook | None = None) -> Callable[..., Awaitable[None]]:
    """The close timer's batch action."""

    async def close_due(s: AsyncSession, timers: Sequence[Timer], now: datetime) -> None:
        for timer in timers:
            instance = await s.get(ReviewInstance, timer.subject_id or 0)
            if instance is None or instance.status != ReviewStatus.IN_PROGRESS:
                continue
            _, spec = await find_definition(s, instance.definition_id)
            await close_instance(
                s, spec=spec, instance=instance, now=now, actor=SYSTEM_ACTOR, on_removed=on_removed
            )

    return close_due


async def close_instance(
    s: AsyncSession,
    *,
    spec: ReviewSpec,
    instance: ReviewInstance,
    now: datetime,
    actor: str,
    on_removed: RemovalHook | None = None,
) -> str | None:
    """Close and (auto_apply) apply; returns the summary line, or None when another replica
    or command closed it first."""
    status = ReviewStatus.APPLIED if spec.auto_apply else ReviewStatus.COMPLETED
    # The guard on status makes the end happen once, whoever else ends it meanwhile.
    closed = await s.execute(
        update(ReviewInstance)
        .where(ReviewInstance.id == instance.id, ReviewInstance.status == ReviewStatus.IN_PROGRESS)
        .values(status=status, closed_at=now)
        .execution_options(synchronize_session="evaluate")
    )
    if closed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    await cancel_instance_timers(s, instance_id=instance.id, now=now)
    await _outcomes(s, spec=spec, instance_id=instance.id)
    removed = (
        await _remove(s, spec=spec, instance=instance, now=now, on_removed=on_removed)
        if spec.auto_apply
        else 0
    )
    summary = await _summarise(
        s, spec=spec, instance=instance, removed=removed, now=now, actor=actor
    )
    reviewers = await s.scalars(
        select(ReviewReviewer.reviewer_id)
        .distinct()
        .where(ReviewReviewer.instance_id == instance.id)
    )
    await redraw_cards(s, spec=spec, instance=instance, reviewer_ids=list(reviewers), now=now)
    return summary


async def _outcomes(s: AsyncSession, *, spec: ReviewSpec, instance_id: int) -> None:
    keep, remove = literal(ReviewOutcome.KEEP.value), literal(ReviewOutcome.REMOVE.value)
    unanswered = {
        "keep": keep,
        "remove": remove,
        "recommendation": case(
            (ReviewItem.recommendation == ReviewDecision.DENY, remove), else_=keep
        ),
    }[spec.on_no_response]
    await s.execute(
        update(ReviewItem)
        .where(ReviewItem.instance_id == instance_id)
        .values(
            outcome=case(
                (ReviewItem.decision == ReviewDecision.APPROVE, keep),
                (ReviewItem.decision == ReviewDecision.DENY, remove),
                else_=unanswered,
            )
        )
        .execution_options(synchronize_session=False)
    )


async def _remove(
    s: AsyncSession,
    *,
    spec: ReviewSpec,
    instance: ReviewInstance,
    now: datetime,
    on_removed: RemovalHook | None,
) -> int:
    mine = ReviewItem.instance_id == instance.id
    # Still-active ones only: an assignment that ended meanwhile has nothing left to remove.
    # Marking the items first lets every later step find them without joining schedules.
    await s.execute(
        update(ReviewItem)
        .where(
            mine,
            ReviewItem.outcome == ReviewOutcome.REMOVE,
            ReviewItem.schedule_id.in_(
                select(Schedule.id).where(Schedule.state == ScheduleState.ACTIVE)
            ),
        )
        .values(applied_at=now)
        .execution_options(synchronize_session=False)
    )
    doomed = select(ReviewItem.schedule_id).where(
        mine, ReviewItem.outcome == ReviewOutcome.REMOVE, ReviewItem.applied_at == now
    )
    await s.execute(
        update(Schedule)
        .where(Schedule.id.in_(doomed))
        .values(state=ScheduleState.REMOVED, ended_at=now)
        .execution_options(synchronize_session=False)
    )
    await s.execute(
        update(Timer)
        .where(
            Timer.subject_id.in_(doomed),
            Timer.kind.in_([EXPIRE, WARN]),
            Timer.status == TimerStatus.PENDING,
        )
        .values(status=TimerStatus.CANCELED, done_at=now)
        .execution_options(synchronize_session=False)
    )
    await s.execute(
        update(ReviewItem)
        .where(mine, ReviewItem.outcome == ReviewOutcome.KEEP)
        .values(applied_at=now)
        .execution_options(synchronize_session=False)
    )
    decider = aliased(Principal)
    query = (
        select(
            ReviewItem.id,
            ReviewItem.schedule_id,
            ReviewItem.kind,
            ReviewItem.decision,
            ReviewItem.reason,
            ReviewItem.recommendation,
            ReviewItem.activations,
            ReviewItem.principal_id,
            Principal.email,
            Role.id.label("role_id"),
            Role.display_name,
            decider.display_name.label("by"),
        )
        .join(Principal, Principal.id == ReviewItem.principal_id)
        .join(Role, Role.id == ReviewItem.role_id)
        .outerjoin(decider, decider.id == ReviewItem.decided_by_id)
        .where(mine, ReviewItem.outcome == ReviewOutcome.REMOVE, ReviewItem.applied_at == now)
        .order_by(ReviewItem.id)
        .limit(CHUNK)
    )
    last, removed = 0, 0
    while rows := (await s.execute(query.where(ReviewItem.id > last))).all():
        last, removed = rows[-1].id, removed + len(rows)
        events, messages = [], []
        for row in rows:
            why = _why(spec, row)
            noun = (
                "eligibility for" if row.kind == ScheduleKind.ELIGIBLE else "active assignment of"
            )
            events.append(
                NewEvent(
                    at=now,
                    actor=SYSTEM_ACTOR,
                    action="review.removed",
                    target=f"{row.email}/{row.role_id}",
                    details={
                        "review": spec.id,
                        "instance": instance.number,
                        "item": row.id,
                        "schedule": row.schedule_id,
                        "kind": row.kind,
                        "why": why,
                    },
                )
            )
            messages.append(
                message_row(
                    now=now,
                    recipient_id=row.principal_id,
                    note=Notification(
                        kind=v.REMOVED,
                        role=RoleRef(id=row.role_id, name=row.display_name),
                        headline=f"Your {noun} {row.display_name} was removed by the access review "
                        f"“{spec.name}”: {why}.",
                    ),
                )
            )
        await audit_all(s, events)
        await notify_all(s, messages)
        if on_removed is not None:
            await on_removed(s, [r.schedule_id for r in rows], now)
    return removed


def _why(spec: ReviewSpec, row: Any) -> str:
    decision = row.decision
    if decision == ReviewDecision.DENY:
        reason = row.reason
        return f"{row.by or 'a reviewer'} denied it" + (f" ({reason})" if reason else "")
    if spec.on_no_response == "recommendation":
        because = recommendation_reason(row.recommendation, row.activations)
        return f"nobody approved it, and pim-bot recommended removing it ({because})"
    return "nobody approved it, and this review removes access nobody approves"


async def _summarise(
    s: AsyncSession,
    *,
    spec: ReviewSpec,
    instance: ReviewInstance,
    removed: int,
    now: datetime,
    actor: str,
) -> str:
    counts = {
        d: n
        for d, n in await s.execute(
            select(ReviewItem.decision, func.count())
            .where(ReviewItem.instance_id == instance.id)
            .group_by(ReviewItem.decision)
        )
    }
    total = sum(counts.values())
    approved, denied = counts.get(ReviewDecision.APPROVE, 0), counts.get(ReviewDecision.DENY, 0)
    unsure, silent = (
        counts.get(ReviewDecision.DONT_KNOW, 0),
        counts.get(ReviewDecision.NOT_REVIEWED, 0),
    )
    applied = f"applied: {removed} removed" if spec.auto_apply else "not applied (auto_apply off)"
    line = (
        f"{spec.name} #{instance.number} ended: reviewed {total - silent} of {total}, "
        f"approved {approved}, denied {denied}, don't know {unsure}, no response {silent}; "
        f"{applied}."
    )
    await audit(
        s,
        at=now,
        actor=actor,
        action="review.applied" if spec.auto_apply else "review.completed",
        target=f"{spec.id}#{instance.number}",
        items=total,
        approved=approved,
        denied=denied,
        dont_know=unsure,
        no_response=silent,
        removed=removed,
        on_no_response=spec.on_no_response,
    )
    notify(
        s,
        now=now,
        recipients=await admins(s),
        note=Notification(
            kind=v.REVIEW_SUMMARY,
            headline=f"Access review ended: {spec.name} #{instance.number}",
            details=(
                f"Reviewed {total - silent} of {total}",
                f"Approved {approved}",
                f"Denied {denied}",
                f"Don't know {unsure}",
                f"No response {silent}",
                f"Applied: {removed} removed"
                if spec.auto_apply
                else "Not applied: auto_apply is off",
            ),
        ),
    )
    logger.info("review %s", line)
    return line
