"""Helpers shared by the engine tests: the cast's emails, one chat line, a short audited
history, and a scripted story that moves the clock through the engine's use cases."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from bot.outbox import OutboxWorker
from handlers.activation import ActivationAsk, request_activation
from handlers.approval import decide
from handlers.assignment import assign
from handlers.chat import command_table, run_text
from handlers.commands import Ticket, UserRef
from handlers.digest.report import DigestOptions
from handlers.timers import lifecycle_actions, run_due_timers
from tests.unit.conftest import Engine

ALICE, BOB, CAROL, DAVE = (
    "alice@contoso.com",
    "bob@contoso.com",
    "carol@contoso.com",
    "dave@contoso.com",
)


def outbox_worker(*args: Any, **kwargs: Any) -> OutboxWorker:
    """An outbox worker without its wall-clock budget, for tests that drive it on a fixed
    clock and count what one run_once sent: the budget (which lets timers in during a long
    burst) would cut a pass short on a loaded machine, and the count with it."""
    return OutboxWorker(*args, max_seconds=math.inf, **kwargs)


async def say(eng, who: str, text: str):
    return await run_text(
        eng.uow, eng.clock, commands=command_table(digest=DigestOptions()), actor=who, text=text
    )


async def history(eng) -> None:
    """A few audited changes: an approved request and an activation without approval."""
    rid = (await say(eng, BOB, "activate global-admin 1h keys")).request.id
    await say(eng, CAROL, f"approve {rid} ok")
    await say(eng, BOB, "activate helpdesk-admin 1h printers")


class Story:
    """Moves the clock through the script; every step goes through the engine's use cases."""

    def __init__(self, eng: Engine) -> None:
        self.eng = eng

    async def at(self, when: datetime) -> None:
        assert when >= self.eng.clock.now(), "the script only moves forward"
        self.eng.clock.set(when)
        await run_due_timers(
            self.eng.uow, self.eng.clock, worker="story", actions=lifecycle_actions()
        )

    async def activate(
        self, when: datetime, who: str, role: str, length: timedelta, ticket: str | None = None
    ) -> str:
        await self.at(when)
        view = await request_activation(
            self.eng.uow,
            self.eng.clock,
            actor=who,
            ask=ActivationAsk(
                role=role,
                duration=length,
                justification="scripted work",
                ticket=Ticket(None, ticket) if ticket else None,
            ),
        )
        return view.id

    async def decide(self, when: datetime, who: str, request: str, approve: bool) -> None:
        await self.at(when)
        await decide(
            self.eng.uow,
            self.eng.clock,
            actor=who,
            request_id=request,
            approve=approve,
            justification="looked at it",
        )

    async def assign(
        self, when: datetime, who: str, role: str, kind: str, until: datetime | None = None
    ) -> None:
        await self.at(when)
        await assign(
            self.eng.uow,
            self.eng.clock,
            actor=ALICE,
            user=UserRef("email", who),
            role=role,
            kind=kind,
            until=until,
        )
