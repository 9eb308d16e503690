"""A small organisation with an access review, on a real database, for the review tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from handlers.clock import FixedClock
from handlers.policy import apply_policy
from handlers.reviews.timers import review_actions
from handlers.timers import lifecycle_actions, run_due_timers
from storage.db import make_engine
from storage.models import OutboxMessage, Principal, ReviewInstance, ReviewItem, Schedule
from storage.uow import UnitOfWork
from vocab.states import ScheduleState

T0 = datetime(2027, 1, 4, 0, 0, tzinfo=UTC)

POLICY = """\
admins: [alice@contoso.com]
principals:
  - {email: alice@contoso.com, name: Alice Admin}
  - {email: bob@contoso.com,   name: Bob Builder}
  - {email: carol@contoso.com, name: Carol Chen}
  - {email: dave@contoso.com,  name: Dave Duty}
  - {email: erin@contoso.com,  name: Erin Ersatz}
roles:
  - id: global-admin
    name: Global Administrator
    settings: {approvers: [carol@contoso.com, erin@contoso.com], min_duration: 1s,
               require_justification: false}
  - id: billing-admin
    name: Billing Administrator
    settings: {approvers: [carol@contoso.com]}
assignments:
  - {principal: bob@contoso.com,   role: global-admin,  type: eligible}
  - {principal: dave@contoso.com,  role: global-admin,  type: eligible}
  - {principal: carol@contoso.com, role: billing-admin, type: eligible}
  - {principal: bob@contoso.com,   role: billing-admin, type: active}
reviews:
  - id: q-admins
    name: Quarterly privileged role review
    roles: [global-admin, billing-admin]
    assignments: eligible
    reviewers: approvers
    recurrence: quarterly
    start: 2027-01-04
    duration: 14d
    on_no_response: {on_no_response}
    auto_apply: true
    require_reason: {require_reason}
"""


def policy(on_no_response: str = "keep", require_reason: str = "false", **swap: str) -> str:
    text = POLICY.replace("{on_no_response}", on_no_response).replace(
        "{require_reason}", require_reason
    )
    for old, new in swap.items():
        text = text.replace(old, new)
    return text


@dataclass
class Org:
    uow: UnitOfWork
    clock: FixedClock

    async def run_timers(self, worker: str = "w") -> int:
        return await run_due_timers(
            self.uow, self.clock, worker=worker, actions={**lifecycle_actions(), **review_actions()}
        )

    async def items(self) -> list[ReviewItem]:
        async with self.uow.read() as s:
            return list(await s.scalars(select(ReviewItem).order_by(ReviewItem.id)))

    async def item_of(self, email: str, role: str) -> ReviewItem:
        async with self.uow.read() as s:
            person = await s.scalar(select(Principal).where(Principal.email == email))
            assert person is not None
            found = await s.scalar(
                select(ReviewItem)
                .where(ReviewItem.principal_id == person.id, ReviewItem.role_id == role)
                .order_by(ReviewItem.id.desc())
            )
            assert found is not None
            return found

    async def instances(self) -> list[ReviewInstance]:
        async with self.uow.read() as s:
            return list(await s.scalars(select(ReviewInstance).order_by(ReviewInstance.id)))

    async def messages(self, kind: str | None = None) -> list[tuple[str | None, dict[str, Any]]]:
        """(recipient email or None, payload) of every outbox row, oldest first."""
        async with self.uow.read() as s:
            rows = await s.execute(
                select(Principal.email, OutboxMessage.payload, OutboxMessage.kind)
                .outerjoin(Principal, Principal.id == OutboxMessage.recipient_id)
                .where(OutboxMessage.parent_id.is_(None))
                .order_by(OutboxMessage.id)
            )
            return [(email, payload) for email, payload, k in rows if kind in (None, k)]

    async def state_of(self, email: str, role: str, kind: str) -> ScheduleState:
        async with self.uow.read() as s:
            return (
                (
                    await s.execute(
                        select(Schedule.state)
                        .join(Principal, Principal.id == Schedule.principal_id)
                        .where(
                            Principal.email == email,
                            Schedule.role_id == role,
                            Schedule.kind == kind,
                        )
                        .order_by(Schedule.id.desc())
                    )
                )
                .scalars()
                .first()
            )


@asynccontextmanager
async def org(
    db_url: str, text: str | None = None, *, at: datetime = T0 - timedelta(days=1)
) -> AsyncIterator[Org]:
    engine = make_engine(db_url)
    clock = FixedClock(at)
    uow = UnitOfWork(engine)
    await apply_policy(uow, clock, text=text or policy(), source="policy.yaml")
    try:
        yield Org(uow=uow, clock=clock)
    finally:
        await engine.dispose()
