"""Two replicas on one PostgreSQL database, both applying the same policy at start-up and both
sweeping: the review instance that is due opens exactly once, each reviewer gets one card,
and the next instance's opening is scheduled once."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.config import Settings
from bot.outbox import Delivery, Recipient
from bot.runtime import Runtime
from cards import views as v
from storage.models import AuditEvent, OutboxMessage, ReviewInstance, ReviewItem, Timer
from vocab.states import OutboxStatus, TimerStatus

POLICY = """\
admins: [alice@contoso.com]
principals:
  - {{email: alice@contoso.com, name: Alice Admin, slack_id: U0ALICE}}
  - {{email: bob@contoso.com,   name: Bob Builder, slack_id: U0BOB}}
  - {{email: carol@contoso.com, name: Carol Chen,  slack_id: U0CAROL}}
  - {{email: erin@contoso.com,  name: Erin Ersatz, slack_id: U0ERIN}}
roles:
  - id: global-admin
    name: Global Administrator
    settings: {{approvers: [carol@contoso.com, erin@contoso.com]}}
assignments:
  - {{principal: bob@contoso.com, role: global-admin, type: eligible}}
  - {{principal: alice@contoso.com, role: global-admin, type: eligible}}
reviews:
  - id: ga-review
    name: Global admin review
    roles: all
    reviewers: approvers
    recurrence: weekly
    start: {today}
    duration: 3d
"""


class Recorder:
    """A transport that remembers what each replica delivered."""

    name = "slack"

    def __init__(self, replica: str, seen: list[tuple[str, str, str]]) -> None:
        self.replica, self.seen = replica, seen

    def reaches(self, recipient: Recipient | None, channel: dict[str, str] | None) -> bool:
        return recipient is not None

    async def send(self, delivery: Delivery) -> dict[str, Any] | None:
        assert delivery.recipient is not None
        self.seen.append((self.replica, delivery.recipient.email, delivery.kind))
        await asyncio.sleep(0.01)
        return {"replica": self.replica, "id": delivery.id}

    async def update(self, delivery: Delivery) -> None:
        self.seen.append((self.replica, delivery.card or "", delivery.kind))


@pytest.mark.postgres
async def test_two_replicas_open_the_due_review_once(pg_url, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(today=datetime.now(UTC).date().isoformat()))
    settings = Settings.from_env(
        {"DATABASE_URL": pg_url, "PIM_POLICY": str(policy), "PIM_SWEEP_SECONDS": "1"}
    )
    replicas = [Runtime.build(settings), Runtime.build(settings)]
    seen: list[tuple[str, str, str]] = []
    try:
        for runtime in replicas:  # both apply the policy (Alembic is not for two at once
            await runtime.prepare()  # in one process; separate processes would race here)
        for name, runtime in zip(("r0", "r1"), replicas, strict=True):
            runtime.start_background([Recorder(name, seen)])
        uow = replicas[0].uow
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            async with uow.read() as s:
                opened = await s.scalar(select(func.count(ReviewInstance.id)))
                left = await s.scalar(
                    select(func.count(OutboxMessage.id)).where(
                        OutboxMessage.status.in_([OutboxStatus.PENDING, OutboxStatus.SENDING])
                    )
                )
            if opened and not left and len(seen) >= 2:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(2)  # a few more sweeps by both: still nothing opens twice
        async with uow.read() as s:
            assert await s.scalar(select(func.count(ReviewInstance.id))) == 1
            assert await s.scalar(select(func.count(ReviewItem.id))) == 2
            assert (
                await s.scalar(
                    select(func.count(AuditEvent.id)).where(AuditEvent.action == "review.opened")
                )
                == 1
            )
            opens = (
                await s.execute(
                    select(Timer.key, Timer.status)
                    .where(Timer.kind == "review_open")
                    .order_by(Timer.due_at)
                )
            ).all()
        assert [status for _, status in opens] == [TimerStatus.DONE, TimerStatus.PENDING]
        assert opens[1][0].startswith("review-open:ga-review:2:")
        cards = sorted((email, kind) for _, email, kind in seen if kind == v.REVIEW_CARD)
        assert cards == [("carol@contoso.com", v.REVIEW_CARD), ("erin@contoso.com", v.REVIEW_CARD)]
    finally:
        for runtime in replicas:
            await runtime.close()
