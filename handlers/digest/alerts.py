"""PIM security alerts (Entra's that apply here): each a threshold, a sentence and a stable code.

A code names the alert and its subject ("permanent_holders:global-admin"), so whoever sends
alerts can tell a new one from one admins have already been told about.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from cards.views import AlertLine
from handlers.digest import queries as q
from handlers.grants.health import failed_grants_alert
from handlers.reviews.definitions import ReviewSpec
from handlers.settings import RoleSettings, SettingsError
from storage.models import Principal, ReviewDefinition, Role, Schedule
from storage.uow import UnitOfWork
from vocab.states import MemberType, ScheduleKind

logger = logging.getLogger(__name__)

HIGH, MEDIUM, LOW = "high", "medium", "low"
_ORDER = {HIGH: 0, MEDIUM: 1, LOW: 2}
NAMES_SHOWN = 3


@dataclass(frozen=True)
class AlertThresholds:
    # "There are too many global administrators": more than this many permanent holders.
    permanent_admins_per_role: int = 2
    # "Roles are being activated too frequently": this many activations of one role by one
    # person within `activation_window`, looking back `frequent_lookback` from now.
    activations_per_window: int = 5
    activation_window: timedelta = timedelta(hours=24)
    frequent_lookback: timedelta = timedelta(days=7)
    # "Administrators aren't using their privileged roles": eligible this long, never activated.
    stale_eligibility_days: int = 30


async def compute_alerts(
    session_or_uow: AsyncSession | UnitOfWork,
    *,
    now: datetime,
    thresholds: AlertThresholds = AlertThresholds(),
) -> tuple[AlertLine, ...]:
    """Every alert that holds at `now`, high severity first."""
    if isinstance(session_or_uow, UnitOfWork):
        async with session_or_uow.transaction() as s:
            return await compute_alerts(s, now=now, thresholds=thresholds)
    s = session_or_uow
    lines = [
        *await permanent_holders(s, now=now, limit=thresholds.permanent_admins_per_role),
        *await frequent_activation(s, now=now, thresholds=thresholds),
        *await stale_eligibility(s, now=now, days=thresholds.stale_eligibility_days),
        *await unchecked_roles(s),
        *await failed_grants_alert(s),
    ]
    return tuple(sorted(lines, key=lambda a: (_ORDER[a.severity], a.code)))


def _people(names: list[str], total: int) -> str:
    shown = ", ".join(names)
    return f"{shown} and {total - len(names)} more" if total > len(names) else shown


async def permanent_holders(s: AsyncSession, *, now: datetime, limit: int) -> list[AlertLine]:
    permanent = and_(
        q.holding_at(now),
        Schedule.kind == ScheduleKind.ACTIVE,
        Schedule.member_type == MemberType.ASSIGNED,
        Schedule.end_at.is_(None),
    )
    return [
        AlertLine(
            code=f"permanent_holders:{role_id}",
            severity=HIGH,
            text=(
                f"{n} people hold {role} permanently (threshold {limit}): "
                f"{_people(names, n)}. Make them eligible instead, or give the "
                "assignments an end date."
            ),
        )
        for role_id, role, n, names in await q.people_per_role(
            s, permanent, more_than=limit, names=NAMES_SHOWN
        )
    ]


async def frequent_activation(
    s: AsyncSession, *, now: datetime, thresholds: AlertThresholds
) -> list[AlertLine]:
    window = thresholds.activation_window
    dialect = q.dialect_of(s)
    # For each activation a, the activations in [a - window, a]: a sliding window in SQL.
    in_window = func.count().over(
        partition_by=(Schedule.principal_id, Schedule.role_id),
        order_by=q.epoch(dialect, Schedule.start_at),
        range_=(-int(window.total_seconds()), 0),
    )
    since = now - thresholds.frequent_lookback
    counted = (
        select(Schedule.principal_id, Schedule.role_id, Schedule.start_at, in_window.label("n"))
        .where(q.ACTIVATED, Schedule.start_at >= since - window, Schedule.start_at < now)
        .subquery()
    )
    most = func.max(counted.c.n)
    rows = (
        await s.execute(
            select(Principal.email, Principal.display_name, Role.id, Role.display_name, most)
            .select_from(counted)
            .join(Principal, Principal.id == counted.c.principal_id)
            .join(Role, Role.id == counted.c.role_id)
            .where(counted.c.start_at >= since)
            .group_by(Principal.email, Principal.display_name, Role.id, Role.display_name)
            .having(most >= thresholds.activations_per_window)
            .order_by(most.desc(), Principal.email)
        )
    ).all()
    span = _span_words(window)
    return [
        AlertLine(
            code=f"frequent_activation:{role_id}:{email}",
            severity=MEDIUM,
            text=(
                f"{who} activated {role} {n} times within {span} "
                f"(threshold {thresholds.activations_per_window}). Ask whether a longer "
                "activation would serve, or whether the work should be automated."
            ),
        )
        for email, who, role_id, role, n in rows
    ]


async def stale_eligibility(s: AsyncSession, *, now: datetime, days: int) -> list[AlertLine]:
    since = now - timedelta(days=days)
    reviews = await reviews_by_role(s)
    used = aliased(Schedule)
    stale = and_(
        q.holding_at(now),
        Schedule.kind == ScheduleKind.ELIGIBLE,
        Schedule.start_at <= since,
        ~exists().where(
            used.principal_id == Schedule.principal_id,
            used.role_id == Schedule.role_id,
            used.kind == ScheduleKind.ACTIVE,
            used.member_type == MemberType.ACTIVATED,
            used.start_at >= since,
        ),
    )
    return [
        AlertLine(
            code=f"stale_eligibility:{role_id}",
            severity=LOW,
            text=(
                f"{n} {'person' if n == 1 else 'people'} eligible for {role} "
                f"{'has' if n == 1 else 'have'} not activated it in {days} days: "
                f"{_people(names, n)}. Remove eligibility nobody uses."
                + (
                    f" Review it: pim-bot review start {reviews[role_id]}"
                    if role_id in reviews
                    else ""
                )
            ),
        )
        for role_id, role, n, names in await q.people_per_role(
            s, stale, more_than=0, names=NAMES_SHOWN
        )
    ]


async def reviews_by_role(s: AsyncSession) -> dict[str, str]:
    """The access review that covers each role (its eligible assignments), for the alert
    "admins aren't using their privileged roles" to point at."""
    out: dict[str, str] = {}
    roles = list(await s.scalars(select(Role.id)))
    for definition in await s.scalars(
        select(ReviewDefinition)
        .where(ReviewDefinition.active.is_(True))
        .order_by(ReviewDefinition.id)
    ):
        spec = ReviewSpec.from_mapping(definition.spec)
        if spec.assignments == ScheduleKind.ACTIVE:
            continue
        for role_id in spec.roles if spec.roles is not None else roles:
            out.setdefault(role_id, spec.id)
    return out


async def unchecked_roles(s: AsyncSession) -> list[AlertLine]:
    """Roles anyone eligible can activate with neither approval nor a justification."""
    lines = []
    for role_id, role, raw in (
        await s.execute(select(Role.id, Role.display_name, Role.settings).order_by(Role.id))
    ).all():
        try:
            settings = RoleSettings.from_mapping(raw)
        except SettingsError:
            logger.warning("role %s has invalid settings; skipped by alerts", role_id)
            continue
        if settings.require_approval or settings.require_justification:
            continue
        lines.append(
            AlertLine(
                code=f"no_approval_or_justification:{role_id}",
                severity=MEDIUM,
                text=(
                    f"{role} can be activated with neither approval nor a justification, so "
                    "nobody checks or explains its use. Require one of them."
                ),
            )
        )
    return lines


def _span_words(window: timedelta) -> str:
    secs = int(window.total_seconds())
    if secs % 86400 == 0 and secs > 2 * 86400:
        return f"{secs // 86400} days"
    for size, unit in ((3600, "h"), (60, "m")):
        if secs % size == 0:
            return f"{secs // size}{unit}"
    return f"{secs}s"
