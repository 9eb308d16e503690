"""Helpers shared by the multi-process tests: a history with N overdue expiries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from handlers.activation import ActivationAsk, request_activation
from handlers.assignment import grant_schedule
from handlers.clock import FixedClock
from handlers.settings import RoleSettings
from storage.db import make_engine
from storage.models import Principal, Role
from storage.uow import UnitOfWork

N = 60


async def build_history(url: str) -> None:
    """N people each activated a 5s role an hour ago: N expiries are overdue."""
    engine = make_engine(url)
    uow = UnitOfWork(engine)
    clock = FixedClock(datetime.now(UTC) - timedelta(hours=1))
    async with uow.transaction() as s:
        role = Role(
            id="quick",
            display_name="Quick",
            created_at=clock.now(),
            settings=RoleSettings.from_mapping(
                {"min_duration": "1s", "require_justification": False}
            ).to_mapping(),
        )
        s.add(role)
        for i in range(N):
            p = Principal(email=f"p{i}@contoso.com", display_name=f"P {i}", created_at=clock.now())
            s.add(p)
            await s.flush()
            await grant_schedule(
                s, actor="test", principal=p, role=role, kind="eligible", end=None, now=clock.now()
            )
    for i in range(N):
        await request_activation(
            uow,
            clock,
            actor=f"p{i}@contoso.com",
            ask=ActivationAsk(role="quick", duration=timedelta(seconds=5)),
        )
    await engine.dispose()
