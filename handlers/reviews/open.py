"""Opening a review instance: snapshot the assignments in scope, pair each with its
reviewers, send each reviewer their card, and set the reminder and close timers.

The snapshot and the pairing are INSERT … SELECT statements, so opening a review over tens of
thousands of assignments moves no rows through Python; only each reviewer's first page of
items is read back, for their card.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, exists, func, insert, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from cards import views as v
from handlers.clock import Clock
from handlers.errors import InvalidInput
from handlers.records import SYSTEM_ACTOR, audit
from handlers.reviews.cards import send_cards
from handlers.reviews.definitions import LOOKBACK, ReviewSpec, next_instance
from handlers.reviews.load import UnknownReview, find_definition, open_instance_of
from handlers.reviews.schedule import instance_timers, parse_open_key, schedule_next
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
from vocab.states import MemberType, ReviewDecision, ReviewStatus, ScheduleKind, ScheduleState

logger = logging.getLogger(__name__)
PAIRS = 200  # (role, approver) pairs per statement: within SQLite's compound-select limit


async def start_review(uow: UnitOfWork, clock: Clock, *, actor: str, review_id: str) -> str:
    """`pim-bot review start ID`: open an instance now (unless one is open)."""
    now = clock.now()
    async with uow.transaction() as s:
        definition, spec = await find_definition(s, review_id)
        current = await open_instance_of(s, definition.id)
        if current is not None:
            raise InvalidInput(
                f"{review_id} already has instance {current.number} open until "
                f"{v.when(current.ends_at.isoformat())}; end it first: "
                f"pim-bot review end {review_id}"
            )
        instance = await open_instance(
            s, spec=spec, now=now, actor=actor, scheduled_for=None, starts_at=now
        )
        items = await _count(s, instance.id)
    return (
        f"Opened {spec.name} ({spec.id}) instance {instance.number}: {items} items, "
        f"until {v.when(instance.ends_at.isoformat())}."
    )


async def open_due(s: AsyncSession, timer: Timer, now: datetime) -> bool:
    """The opening timer's action: open the instance it names, then schedule the next."""
    named = parse_open_key(timer.key)
    if named is None:
        return False
    review_id, number, start = named
    try:
        definition, spec = await find_definition(s, review_id)
    except UnknownReview:
        return False  # the definition is gone; nothing to open
    if not definition.active or next_instance(spec, after=number - 1, now=start) != (number, start):
        return False  # the definition changed since the timer was set
    taken = await s.scalar(
        select(
            exists().where(
                ReviewInstance.definition_id == review_id, ReviewInstance.scheduled_for == start
            )
        )
    )
    if start + spec.duration <= now:
        # Down for the whole instance: opening it now would close it at once and apply
        # on_no_response to items nobody ever saw. It is skipped, and said so.
        logger.warning(
            "review %s #%s was due %s and is already over; not opened",
            review_id,
            number,
            start.isoformat(),
        )
        await audit(
            s,
            at=now,
            actor=SYSTEM_ACTOR,
            action="review.skipped",
            target=f"{review_id}#{number}",
            due=start.isoformat(),
        )
        taken = True
    if not taken:
        await open_instance(
            s,
            spec=spec,
            now=now,
            actor=SYSTEM_ACTOR,
            scheduled_for=start,
            starts_at=start,
            number=number,
        )
    await schedule_next(s, spec=spec, now=now, after=number)
    return not taken


async def open_instance(
    s: AsyncSession,
    *,
    spec: ReviewSpec,
    now: datetime,
    actor: str,
    scheduled_for: datetime | None,
    starts_at: datetime,
    number: int | None = None,
) -> ReviewInstance:
    last = (
        await s.scalar(
            select(func.max(ReviewInstance.number)).where(ReviewInstance.definition_id == spec.id)
        )
        or 0
    )
    instance = ReviewInstance(
        definition_id=spec.id,
        number=max(number or 0, last + 1),
        scheduled_for=scheduled_for,
        status=ReviewStatus.IN_PROGRESS,
        opened_by=actor,
        starts_at=starts_at,
        ends_at=starts_at + spec.duration,
    )
    s.add(instance)
    await s.flush()
    await _snapshot(s, spec=spec, instance_id=instance.id, now=now)
    await _pair_reviewers(s, spec=spec, instance_id=instance.id)
    items, reviewers = await _count(s, instance.id), await _reviewers(s, instance.id)
    await audit(
        s,
        at=now,
        actor=actor,
        action="review.opened",
        target=f"{spec.id}#{instance.number}",
        name=spec.name,
        items=items,
        reviewers=len(reviewers),
        ends=instance.ends_at.isoformat(),
    )
    await send_cards(
        s,
        spec=spec,
        instance=instance,
        reviewer_ids=reviewers,
        now=now,
        headline=f"Please review access: {spec.name}",
    )
    await instance_timers(
        s, instance_id=instance.id, starts_at=instance.starts_at, ends_at=instance.ends_at, now=now
    )
    logger.info(
        "review %s#%s opened: %s items, %s reviewers",
        spec.id,
        instance.number,
        items,
        len(reviewers),
    )
    return instance


async def _snapshot(s: AsyncSession, *, spec: ReviewSpec, instance_id: int, now: datetime) -> None:
    """One review item per assignment in scope, with pim-bot's own recommendation."""
    used = (
        select(Schedule.principal_id, Schedule.role_id, func.count(Schedule.id).label("n"))
        .where(
            Schedule.kind == ScheduleKind.ACTIVE,
            Schedule.member_type == MemberType.ACTIVATED,
            Schedule.start_at >= now - LOOKBACK,
        )
        .group_by(Schedule.principal_id, Schedule.role_id)
        .subquery()
    )
    n = func.coalesce(used.c.n, 0)
    eligible = Schedule.kind == ScheduleKind.ELIGIBLE
    recommend = case(
        (and_(eligible, n == 0), literal(ReviewDecision.DENY.value)),
        (n > 0, literal(ReviewDecision.APPROVE.value)),
        else_=None,
    )
    scope = [Schedule.state == ScheduleState.ACTIVE]
    if spec.assignments == ScheduleKind.ELIGIBLE:
        scope.append(eligible)
    elif spec.assignments == ScheduleKind.ACTIVE:
        scope.append(Schedule.member_type == MemberType.ASSIGNED)
    else:  # activations come and go on their own; the assignments behind them are reviewed
        scope.append(eligible | (Schedule.member_type == MemberType.ASSIGNED))
    if spec.roles is not None:
        scope.append(Schedule.role_id.in_(spec.roles))
    rows = (
        select(
            literal(instance_id),
            Schedule.id,
            Schedule.principal_id,
            Schedule.role_id,
            Schedule.kind,
            n,
            recommend,
            literal(ReviewDecision.NOT_REVIEWED.value),
        )
        .outerjoin(
            used,
            and_(used.c.principal_id == Schedule.principal_id, used.c.role_id == Schedule.role_id),
        )
        .where(*scope)
        .order_by(Schedule.role_id, Schedule.principal_id)
    )
    await s.execute(
        insert(ReviewItem).from_select(
            [
                "instance_id",
                "schedule_id",
                "principal_id",
                "role_id",
                "kind",
                "activations",
                "recommendation",
                "decision",
            ],
            rows,
        )
    )


async def _pair_reviewers(s: AsyncSession, *, spec: ReviewSpec, instance_id: int) -> None:
    """(item, reviewer) pairs. Nobody reviews their own access unless reviewers: self; an
    item left with no reviewer (its person is the only approver) goes to the admins."""
    items = (
        select(ReviewItem.id, ReviewItem.principal_id, ReviewItem.role_id)
        .where(ReviewItem.instance_id == instance_id)
        .subquery()
    )
    columns = ["item_id", "reviewer_id", "instance_id"]
    if spec.self_review:
        await s.execute(
            insert(ReviewReviewer).from_select(
                columns, select(items.c.id, items.c.principal_id, literal(instance_id))
            )
        )
        return
    if spec.reviewers == "approvers":
        await _pair_approvers(s, items, instance_id)
    elif spec.reviewers == "admins":
        await _pair(s, items, instance_id, Principal.admin.is_(True))
    else:
        await _pair(s, items, instance_id, func.lower(Principal.email).in_(spec.reviewers))
    await _pair(s, items, instance_id, Principal.admin.is_(True), orphans_only=True)


async def _pair_approvers(s: AsyncSession, items: Any, instance_id: int) -> None:
    """Each role's named approvers, as (role, reviewer) pairs joined to the items in one
    statement per PAIRS of them, not one statement per role."""
    roles = select(ReviewItem.role_id).where(ReviewItem.instance_id == instance_id).distinct()
    wanted: dict[str, list[str]] = {}
    for role in await s.scalars(select(Role).where(Role.id.in_(roles))):
        for email in (role.settings or {}).get("approvers") or []:
            wanted.setdefault(email.lower(), []).append(role.id)
    ids: dict[str, int] = {}
    if wanted:
        for email, pid in await s.execute(
            select(func.lower(Principal.email), Principal.id).where(
                func.lower(Principal.email).in_(list(wanted))
            )
        ):
            ids[email] = pid
    pairs = [
        (role_id, ids[email])
        for email, role_ids in wanted.items()
        if email in ids
        for role_id in role_ids
    ]
    for start in range(0, len(pairs), PAIRS):
        chunk = union_all(
            *(
                select(literal(role_id).label("role_id"), literal(reviewer).label("reviewer_id"))
                for role_id, reviewer in pairs[start : start + PAIRS]
            )
        ).subquery()
        await s.execute(
            insert(ReviewReviewer).from_select(
                ["item_id", "reviewer_id", "instance_id"],
                select(items.c.id, chunk.c.reviewer_id, literal(instance_id))
                .join(chunk, chunk.c.role_id == items.c.role_id)
                .where(chunk.c.reviewer_id != items.c.principal_id),
            )
        )


async def _pair(
    s: AsyncSession, items: Any, instance_id: int, who: Any, *, orphans_only: bool = False
) -> None:
    """Pair this instance's items (`items`, a subquery) with the people `who` selects,
    never with the item's own person."""
    query = (
        select(items.c.id, Principal.id, literal(instance_id))
        .join(Principal, Principal.id != items.c.principal_id)
        .where(who)
    )
    if orphans_only:
        query = query.where(~exists().where(ReviewReviewer.item_id == items.c.id))
    await s.execute(
        insert(ReviewReviewer).from_select(["item_id", "reviewer_id", "instance_id"], query)
    )


async def _count(s: AsyncSession, instance_id: int) -> int:
    return int(
        await s.scalar(
            select(func.count(ReviewItem.id)).where(ReviewItem.instance_id == instance_id)
        )
        or 0
    )


async def _reviewers(s: AsyncSession, instance_id: int) -> list[int]:
    return list(
        await s.scalars(
            select(ReviewReviewer.reviewer_id)
            .where(ReviewReviewer.instance_id == instance_id)
            .distinct()
            .order_by(ReviewReviewer.reviewer_id)
        )
    )
