"""The digest's queries. Every figure is aggregated in the database; Python receives a few
rows per figure, never the history itself.

Time zones stay out of SQL: the caller turns local days and working hours into UTC instants
(zoneinfo knows the DST rules) and the queries compare timestamps with them, which reads the
same and gives the same answer on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ApprovalStep, Principal, Role, Schedule, ScheduleRequest
from storage.types import UTCDateTime
from vocab.states import Action, MemberType, ReviewResult, ScheduleKind, ScheduleState, Status

Span = tuple[datetime, datetime]  # [start, end), aware UTC

# An activation took effect: an Activated active schedule exists (it is written when access
# starts, so requests that were denied, timed out or canceled never make one).
ACTIVATED = and_(Schedule.kind == ScheduleKind.ACTIVE, Schedule.member_type == MemberType.ACTIVATED)
NEEDED_APPROVAL = and_(
    ScheduleRequest.action == Action.SELF_ACTIVATE, ScheduleRequest.approval_deadline.is_not(None)
)


def ts(value: datetime) -> ColumnElement[datetime]:
    """A timestamp parameter stored exactly like the columns (naive UTC text on SQLite)."""
    return literal(value, UTCDateTime())


def within(col: Any, span: Span) -> ColumnElement[bool]:
    return and_(col >= span[0], col < span[1])


def dialect_of(s: AsyncSession) -> str:
    return s.get_bind().dialect.name


def epoch(dialect: str, col: Any) -> ColumnElement[float]:
    """Seconds since 1970 as a float (millisecond precision on SQLite)."""
    if dialect == "postgresql":
        return cast(func.extract("epoch", col), Float)
    # SQLite 3.40 has no unixepoch(x, 'subsec'): whole seconds plus the fraction of %f.
    whole = cast(func.strftime("%s", col), Float) - cast(func.strftime("%S", col), Float)
    return whole + cast(func.strftime("%f", col), Float)


def least(dialect: str, *args: Any) -> ColumnElement[Any]:
    return func.least(*args) if dialect == "postgresql" else func.min(*args)


def holding_at(at: datetime) -> ColumnElement[bool]:
    """The schedule was in force at the instant `at`, judged by its times, so a digest of a
    past week sees that week's holders and a lagging expiry timer keeps nobody counted.
    Rows that ended (Expired, Removed) always have `ended_at`; Active ones never do."""
    return and_(
        Schedule.start_at <= at,
        or_(Schedule.end_at.is_(None), Schedule.end_at > at),
        or_(Schedule.state == ScheduleState.ACTIVE, Schedule.ended_at > at),
    )


def _both(cond: ColumnElement[bool], col: Any, cur: Span, prev: Span) -> list[Any]:
    return [
        func.count().filter(and_(cond, within(col, cur))),
        func.count().filter(and_(cond, within(col, prev))),
    ]


async def tile_counts(s: AsyncSession, *, cur: Span, prev: Span) -> list[tuple[int, int]]:
    """Entra's four tiles, (this period, previous period) each."""
    tiles: list[tuple[ColumnElement[bool], Any]] = [
        (ACTIVATED, Schedule.start_at),
        (
            and_(Schedule.member_type == MemberType.ASSIGNED, Schedule.end_at.is_(None)),
            Schedule.created_at,
        ),
        (Schedule.kind == ScheduleKind.ELIGIBLE, Schedule.created_at),
        (
            and_(Schedule.kind == ScheduleKind.ACTIVE, Schedule.member_type == MemberType.ASSIGNED),
            Schedule.created_at,
        ),
    ]
    both = (prev[0], cur[1])
    row = (
        await s.execute(
            select(*[c for cond, col in tiles for c in _both(cond, col, cur, prev)]).where(
                or_(
                    and_(ACTIVATED, within(Schedule.start_at, both)),
                    within(Schedule.created_at, both),
                )
            )
        )
    ).one()
    return [(int(row[2 * i]), int(row[2 * i + 1])) for i in range(len(tiles))]


async def activation_buckets(
    s: AsyncSession, *, bounds: Sequence[datetime], working: Sequence[Span]
) -> list[tuple[int, bool, int]]:
    """(slice index, in working hours, activations) for the slices between consecutive
    `bounds` (local days of both periods, as UTC instants)."""
    col = Schedule.start_at
    index = case(*[(col < b, i) for i, b in enumerate(bounds[1:-1])], else_=len(bounds) - 2)
    in_hours = or_(*[within(col, w) for w in working]) if working else false()
    flag = case((in_hours, 1), else_=0)
    rows = (
        await s.execute(
            select(index.label("i"), flag.label("w"), func.count())
            .where(ACTIVATED, within(col, (bounds[0], bounds[-1])))
            .group_by(index, flag)
        )
    ).all()
    return [(int(i), bool(w), int(n)) for i, w, n in rows]


async def approval_counts(s: AsyncSession, *, cur: Span, prev: Span) -> list[tuple[int, int]]:
    """Requests that needed approval; approved; denied; timed out; canceled before anyone
    decided. Each period is a cohort of requests by creation, with the outcomes known at
    the period's end, so last week's figure here is the one last week's digest showed.
    The first decision wins, so a request has at most one approval step."""
    r, st = ScheduleRequest, ApprovalStep

    def outcomes(end: datetime) -> list[ColumnElement[bool]]:
        return [
            literal(True),
            and_(st.decision == ReviewResult.APPROVE, st.decided_at < end),
            and_(st.decision == ReviewResult.DENY, st.decided_at < end),
            and_(r.status == Status.TIMED_OUT, r.decided_at < end),
            and_(r.status == Status.CANCELED, st.id.is_(None), r.decided_at < end),
        ]

    columns = [
        func.count().filter(and_(k, within(r.created_at, span)))
        for pair in zip(outcomes(cur[1]), outcomes(prev[1]), strict=True)
        for k, span in zip(pair, (cur, prev), strict=True)
    ]
    row = (
        await s.execute(
            select(*columns)
            .select_from(r)
            .outerjoin(st, st.request_id == r.id)
            .where(NEEDED_APPROVAL, within(r.created_at, (prev[0], cur[1])))
        )
    ).one()
    return [(int(row[2 * i]), int(row[2 * i + 1])) for i in range(len(columns) // 2)]


def _decided_in(span: Span) -> ColumnElement[bool]:
    """Approval requests created in the span and approved or denied before its end."""
    return and_(
        NEEDED_APPROVAL, within(ScheduleRequest.created_at, span), ApprovalStep.decided_at < span[1]
    )


def _decision_seconds(dialect: str) -> ColumnElement[float]:
    return epoch(dialect, ApprovalStep.decided_at) - epoch(dialect, ScheduleRequest.created_at)


async def decision_percentiles(
    s: AsyncSession, *, span: Span, ps: Sequence[float]
) -> list[float | None]:
    """Time from request to approve/deny, as percentile_cont would interpolate it."""
    dialect = dialect_of(s)
    dur = _decision_seconds(dialect)
    base = (
        select(dur)
        .select_from(ScheduleRequest)
        .join(ApprovalStep, ApprovalStep.request_id == ScheduleRequest.id)
        .where(_decided_in(span))
    )
    if dialect == "postgresql":
        row = (
            await s.execute(
                base.with_only_columns(*[func.percentile_cont(p).within_group(dur) for p in ps])
            )
        ).one()
        return [None if v is None else round(float(v), 3) for v in row]
    n = int(await s.scalar(base.with_only_columns(func.count())) or 0)
    out: list[float | None] = []
    for p in ps:
        if n == 0:
            out.append(None)
            continue
        pos = p * (n - 1)
        low = int(pos)
        pair = [float(v) for v in (await s.scalars(base.order_by(dur).offset(low).limit(2)))]
        upper = pair[1] if len(pair) > 1 else pair[0]
        out.append(round(pair[0] + (upper - pair[0]) * (pos - low), 3))
    return out


async def slowest_approvers(
    s: AsyncSession, *, span: Span, top: int
) -> list[tuple[str, float, int]]:
    """(name, mean seconds to decide, decisions) of approvers, slowest first."""
    dur = func.avg(_decision_seconds(dialect_of(s)))
    rows = (
        await s.execute(
            select(Principal.display_name, dur, func.count())
            .select_from(ApprovalStep)
            .join(ScheduleRequest, ScheduleRequest.id == ApprovalStep.request_id)
            .join(Principal, Principal.id == ApprovalStep.reviewer_id)
            .where(_decided_in(span))
            .group_by(Principal.id, Principal.display_name)
            .order_by(dur.desc(), Principal.display_name)
            .limit(top)
        )
    ).all()
    return [(name, float(mean), int(n)) for name, mean, n in rows]


async def longest_activations(
    s: AsyncSession, *, span: Span, top: int
) -> list[tuple[str, str, float, bool]]:
    """(person, role, seconds, still running) of activations that started in the span. The
    length is what the activation lasts: until it ended, or for one still running, until its
    end time (its elapsed time so far would rank a fresh 8h activation below a finished 1h)."""
    dialect = dialect_of(s)
    last = ts(span[1])
    stop = least(
        dialect,
        func.coalesce(Schedule.ended_at, Schedule.end_at, last),
        func.coalesce(Schedule.end_at, Schedule.ended_at, last),
    )
    held = epoch(dialect, stop) - epoch(dialect, Schedule.start_at)
    running = or_(Schedule.ended_at.is_(None), Schedule.ended_at > last)
    rows = (
        await s.execute(
            select(Principal.display_name, Role.display_name, held, running)
            .select_from(Schedule)
            .join(Principal, Principal.id == Schedule.principal_id)
            .join(Role, Role.id == Schedule.role_id)
            .where(ACTIVATED, within(Schedule.start_at, span))
            .order_by(held.desc(), Schedule.start_at, Schedule.id)
            .limit(top)
        )
    ).all()
    return [(who, role, float(secs), bool(live)) for who, role, secs, live in rows]


async def frequent_activators(s: AsyncSession, *, span: Span, top: int) -> list[tuple[str, int]]:
    n = func.count()
    rows = (
        await s.execute(
            select(Principal.display_name, n)
            .select_from(Schedule)
            .join(Principal, Principal.id == Schedule.principal_id)
            .where(ACTIVATED, within(Schedule.start_at, span))
            .group_by(Principal.id, Principal.display_name)
            .order_by(n.desc(), Principal.display_name)
            .limit(top)
        )
    ).all()
    return [(name, int(count)) for name, count in rows]


async def top_roles(s: AsyncSession, *, at: datetime, top: int) -> list[tuple[str, int]]:
    """Roles by distinct people eligible for or holding them at `at`."""
    pairs = (
        select(Schedule.role_id, Schedule.principal_id).where(holding_at(at)).distinct().subquery()
    )
    holders = func.count()
    rows = (
        await s.execute(
            select(Role.display_name, holders)
            .select_from(pairs)
            .join(Role, Role.id == pairs.c.role_id)
            .group_by(Role.id, Role.display_name)
            .order_by(holders.desc(), Role.display_name)
            .limit(top)
        )
    ).all()
    return [(name, int(n)) for name, n in rows]


async def ending_soon(
    s: AsyncSession,
    *,
    at: datetime,
    until: datetime,
    top: int,
    activations_until: datetime | None = None,
) -> list[tuple[str, str, str, datetime]]:
    """(person, role, kind, end) of eligibilities and admin assignments in force at `at`
    that end by `until`, and of activations that end by `activations_until` (they last
    hours, so only those ending right after the digest are worth a line), soonest first."""
    assigned = and_(Schedule.member_type == MemberType.ASSIGNED, Schedule.end_at <= until)
    cond = (
        assigned
        if activations_until is None
        else or_(
            # one that starts at `at` exactly belongs to the next digest, like every figure
            assigned,
            and_(ACTIVATED, Schedule.start_at < at, Schedule.end_at <= activations_until),
        )
    )
    rows = (
        await s.execute(
            select(Principal.display_name, Role.display_name, Schedule.kind, Schedule.end_at)
            .select_from(Schedule)
            .join(Principal, Principal.id == Schedule.principal_id)
            .join(Role, Role.id == Schedule.role_id)
            .where(holding_at(at), cond)
            .order_by(Schedule.end_at, Principal.display_name, Schedule.id)
            .limit(top)
        )
    ).all()
    return [(who, role, kind, end) for who, role, kind, end in rows if end is not None]


async def people_per_role(
    s: AsyncSession, cond: ColumnElement[bool], *, more_than: int, names: int
) -> list[tuple[str, str, int, list[str]]]:
    """(role id, role name, people, the first `names` of them by name) for every role with
    more than `more_than` distinct people holding a schedule that meets `cond`. One scan:
    the count and the names come from window functions over the same rows."""
    people = (
        select(Schedule.role_id, Schedule.principal_id, Principal.display_name)
        .join(Principal, Principal.id == Schedule.principal_id)
        .where(cond)
        .distinct()
        .subquery()
    )
    ranked = select(
        people.c.role_id,
        people.c.display_name,
        func.count().over(partition_by=people.c.role_id).label("total"),
        func.row_number()
        .over(
            partition_by=people.c.role_id, order_by=(people.c.display_name, people.c.principal_id)
        )
        .label("n"),
    ).subquery()
    rows = (
        await s.execute(
            select(ranked.c.role_id, Role.display_name, ranked.c.total, ranked.c.display_name)
            .join(Role, Role.id == ranked.c.role_id)
            .where(ranked.c.n <= names, ranked.c.total > more_than)
            .order_by(ranked.c.role_id, ranked.c.n)
        )
    ).all()
    out: dict[str, tuple[str, str, int, list[str]]] = {}
    for role_id, role, total, name in rows:
        out.setdefault(role_id, (role_id, role, int(total), []))[3].append(name)
    return list(out.values())
