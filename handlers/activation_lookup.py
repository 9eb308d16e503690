"""Everything asking for a role needs to know, read in one statement: who asks, the role,
what they hold of it, what they asked for already, and which new request id is free.

Asking is the busiest write there is (a shift change is thousands of asks), and each
statement is a round trip: one joined SELECT, built once, replaces five."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BindParameter, and_, bindparam, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from handlers.directory import find_role, require_principal
from handlers.records import request_id_candidates
from storage.models import Principal, Role, Schedule, ScheduleRequest
from vocab.states import Action, ScheduleKind, ScheduleState, Status


@dataclass(frozen=True, slots=True)
class Held:
    """An active eligibility or assignment of the role."""

    kind: ScheduleKind
    start_at: datetime
    end_at: datetime | None


@dataclass(frozen=True, slots=True)
class Asked:
    """An earlier ask for the role that is waiting for approval or for its start."""

    short_id: str
    status: Status
    start_at: datetime


@dataclass(frozen=True, slots=True)
class AskLookup:
    me: Principal
    role: Role
    held: list[Held]
    pending: Asked | None
    free_id: str | None  # None: every candidate was taken, draw again


_ASKED = aliased(ScheduleRequest, name="asked")
_CANDIDATES = 3
_EMAIL: BindParameter[str] = bindparam("email")
# The asker's id once more, as a value rather than a join column. PostgreSQL plans the joins
# from statistics, and a table that grew since its last ANALYZE (a shift change asking
# thousands of times) looks nearly empty: it then read every active schedule and every
# request to join them to one person, a scan per ask that grows with each ask. A value the
# planner knows is one person's makes each join an index probe on any statistics.
_ME = select(Principal.id).where(func.lower(Principal.email) == _EMAIL).scalar_subquery()
# Each person holds few schedules of a role and has at most an ask or two pending, so the
# joins multiply a handful of rows at most.
_LOOKUP = (
    select(
        Principal,
        Role,
        Schedule.kind,
        Schedule.start_at,
        Schedule.end_at,
        _ASKED.short_id,
        _ASKED.status,
        _ASKED.start_at,
        *(
            exists().where(ScheduleRequest.short_id == bindparam(f"id{i}")).label(f"taken{i}")
            for i in range(_CANDIDATES)
        ),
    )
    .select_from(Principal)
    .outerjoin(
        Role,
        or_(
            func.lower(Role.id) == bindparam("role"),
            func.lower(Role.display_name) == bindparam("role"),
        ),
    )
    .outerjoin(
        Schedule,
        and_(
            Schedule.principal_id == Principal.id,
            Schedule.principal_id == _ME,
            Schedule.role_id == Role.id,
            # Every kind, named: so the whole of ix_schedules_lookup (person, role, kind,
            # state) applies. Without it SQLite chose ix_schedules_end (state) and read
            # every active schedule of everyone on each ask, 10,000 of them in a shift change.
            # ORs of equalities, not an IN list, which SQLAlchemy renders anew on every
            # execution; SQLite reads them as an IN all the same.
            or_(*(Schedule.kind == kind for kind in ScheduleKind)),
            Schedule.state == ScheduleState.ACTIVE,
        ),
    )
    .outerjoin(
        _ASKED,
        and_(
            _ASKED.principal_id == Principal.id,
            _ASKED.principal_id == _ME,
            _ASKED.role_id == Role.id,
            _ASKED.action == Action.SELF_ACTIVATE,
            or_(_ASKED.status == Status.PENDING_APPROVAL, _ASKED.status == Status.GRANTED),
        ),
    )
    .where(func.lower(Principal.email) == _EMAIL)
)


async def look_up_ask(s: AsyncSession, *, actor: str, role: str) -> AskLookup:
    """Raise UnknownPrincipal / UnknownRole as directory's lookups do, or return all of it."""
    wanted = role.strip().strip("\"'").strip()
    candidates = request_id_candidates()
    rows = (
        await s.execute(
            _LOOKUP,
            {
                "email": actor.strip().lower(),
                "role": wanted.lower(),
                **{f"id{i}": c for i, c in enumerate(candidates)},
            },
        )
    ).all()
    if not rows:
        await require_principal(s, actor)  # raises, with its message
    if rows[0][1] is None:
        await find_role(s, role, usable_by=rows[0][0].id)  # raises, suggesting their roles
    me, found = rows[0][0], rows[0][1]
    mine = [r for r in rows if r[1] is found]
    held = {(r[2], r[3], r[4]) for r in mine if r[2] is not None}
    asked = next(
        (Asked(short_id=r[5], status=r[6], start_at=r[7]) for r in mine if r[5] is not None), None
    )
    taken = rows[0][8 : 8 + _CANDIDATES]
    return AskLookup(
        me=me,
        role=found,
        held=[Held(kind=k, start_at=a, end_at=e) for k, a, e in held],
        pending=asked,
        free_id=next((c for c, t in zip(candidates, taken, strict=True) if not t), None),
    )
