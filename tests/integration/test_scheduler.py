"""The real Sweeper on the wall clock (docs/architecture.md, timers): APScheduler date jobs wake it
exactly when access ends, poke() makes it look at once, and work that fell due while it was
down runs at start-up. The interval sweep is an hour long, so only those can explain
punctuality: "on time" here means within PROMPTLY, far from the hour a sweep would take, and
far enough from the work itself for a loaded CI machine (pytest -n 4 on 2 cores, where one
expiry's transaction on PostgreSQL alone took 1.3 s)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.outbox import Delivery, OutboxWorker, Recipient
from bot.scheduler import Sweeper
from cards.views import when
from handlers.chat import command_table, run_text
from handlers.clock import Clock, FixedClock, SystemClock
from handlers.digest.report import DigestOptions
from handlers.timers import lifecycle_actions
from storage.db import make_engine
from storage.models import Schedule
from storage.uow import UnitOfWork
from tests.unit.conftest import seed, write_lock
from vocab.states import ScheduleState

BOB = "bob@contoso.com"
LONG_SWEEP = 3600.0
PROMPTLY = timedelta(seconds=15)


@dataclass
class Inbox:
    """A transport that records what reached whom, and when (wall clock)."""

    name: str = "slack"
    got: list[tuple[datetime, str, str, str]] = field(default_factory=list)

    def reaches(self, recipient: Recipient | None, channel: dict[str, str] | None) -> bool:
        return recipient is not None

    async def send(self, delivery: Delivery) -> dict[str, Any] | None:
        to = delivery.recipient.email if delivery.recipient else "-"
        self.got.append((datetime.now(UTC), to, delivery.kind, delivery.note.headline))
        return {"ts": str(delivery.id)}

    async def update(self, delivery: Delivery) -> None:
        self.got.append((datetime.now(UTC), "-", delivery.kind, delivery.note.headline))

    def of(self, kind: str) -> list[tuple[datetime, str, str]]:
        return [(at, to, headline) for at, to, k, headline in self.got if k == kind]

    async def wait_for(self, kind: str, *, count: int = 1, within: float) -> None:
        deadline = time.monotonic() + within
        while len(self.of(kind)) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.01)


@dataclass
class Bot:
    uow: UnitOfWork
    clock: SystemClock
    inbox: Inbox
    sweeper: Sweeper

    async def say(self, who: str, text: str, *, clock: Clock | None = None) -> Any:
        return await run_text(
            self.uow,
            clock or self.clock,
            commands=command_table(digest=DigestOptions()),
            actor=who,
            text=text,
        )

    async def idle(self) -> None:
        """Wait for a sweep in progress to finish (test synchronisation only)."""
        async with self.sweeper._lock:
            pass

    async def schedules(self, role: str) -> list[Schedule]:
        async with self.uow.transaction() as s:
            return list(
                (
                    await s.scalars(
                        select(Schedule).where(Schedule.role_id == role, Schedule.kind == "active")
                    )
                ).all()
            )


@pytest.fixture
async def bot(db_url: str) -> AsyncIterator[Bot]:
    engine = make_engine(db_url)
    uow, clock = UnitOfWork(engine), SystemClock()
    # eligible since yesterday, so a test can also act "while the bot was down"
    await seed(uow, FixedClock(clock.now() - timedelta(days=1)))
    inbox = Inbox()
    outbox = OutboxWorker(uow, clock, [inbox], worker="it")
    sweeper = Sweeper(
        uow, clock, outbox, worker="it", sweep_seconds=LONG_SWEEP, timer_actions=lifecycle_actions()
    )
    b = Bot(uow, clock, inbox, sweeper)
    try:
        yield b
    finally:
        await sweeper.stop()
        await engine.dispose()


async def test_access_ends_on_time_without_waiting_for_the_sweep(bot):
    reply = await bot.say(BOB, "activate quick 2s")
    assert reply.ok, reply.text
    (schedule,) = await bot.schedules("quick")
    bot.sweeper.start()
    await bot.inbox.wait_for("expired", within=30)
    (schedule,) = await bot.schedules("quick")
    assert schedule.state == ScheduleState.EXPIRED
    assert schedule.end_at is not None and schedule.ended_at is not None
    assert timedelta(0) <= schedule.ended_at - schedule.end_at < PROMPTLY
    ((at, to, headline),) = bot.inbox.of("expired")
    assert (to, headline) == (BOB, "Your Quick Role access has ended.")
    assert at - schedule.end_at < PROMPTLY
    assert bot.inbox.of("expiring") == []  # 2s is shorter than the 10s warning window


async def test_poke_delivers_at_once(bot):
    bot.sweeper.start()
    await bot.inbox.wait_for("assigned", count=5, within=30)  # the immediate first sweep
    assert len(bot.inbox.of("assigned")) == 5
    await bot.idle()
    reply = await bot.say(BOB, "activate helpdesk-admin 1h reset a password")
    assert reply.ok, reply.text
    # Nothing looks before the next sweep, an hour away: no wake-up is planned but that one.
    (sweep,) = bot.sweeper.scheduler.get_jobs()
    assert sweep.id == "sweep" and sweep.next_run_time > datetime.now(UTC) + timedelta(minutes=30)
    assert bot.inbox.of("activated") == []
    poked = datetime.now(UTC)
    bot.sweeper.poke()
    await bot.inbox.wait_for("activated", within=30)
    ((at, to, headline),) = bot.inbox.of("activated")
    assert to == BOB and headline.startswith("Helpdesk Administrator is active until ")
    assert at - poked < PROMPTLY


async def test_work_due_while_down_runs_at_start(bot):
    an_hour_ago = FixedClock(datetime.now(UTC) - timedelta(hours=1))
    reply = await bot.say(BOB, "activate quick 5m", clock=an_hour_ago)
    assert reply.ok, reply.text
    started = datetime.now(UTC)
    bot.sweeper.start()
    await bot.inbox.wait_for("expired", within=30)
    ((at, to, headline),) = bot.inbox.of("expired")
    assert (to, headline) == (BOB, "Your Quick Role access has ended.")
    assert at - started < PROMPTLY
    (schedule,) = await bot.schedules("quick")
    assert schedule.state == ScheduleState.EXPIRED and schedule.ended_at >= started
    # the activation notice that was never sent goes out too; the stale warning does not
    assert [(to, h) for _, to, h in bot.inbox.of("activated")] == [
        (BOB, f"Quick Role is active until {when(schedule.end_at.isoformat())}.")
    ]
    assert bot.inbox.of("expiring") == []


async def test_access_ends_while_the_outbox_is_stuck_sending(bot):
    """Timers have their own lane: a send that hangs (a slow chat API) holds up messages,
    never the end of access."""
    reply = await bot.say(BOB, "activate quick 2s")
    assert reply.ok, reply.text
    gate, sending = asyncio.Event(), asyncio.Event()
    send = bot.inbox.send

    async def hang_until_released(delivery: Delivery) -> dict[str, Any] | None:
        sending.set()
        await gate.wait()
        return await send(delivery)

    bot.inbox.send = hang_until_released  # type: ignore[method-assign]
    bot.sweeper.start()
    try:
        await asyncio.wait_for(sending.wait(), timeout=30)  # "activated" is stuck in the send
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            (schedule,) = await bot.schedules("quick")
            if schedule.state == ScheduleState.EXPIRED:
                break
            await asyncio.sleep(0.05)
        assert schedule.state == ScheduleState.EXPIRED
        assert bot.inbox.of("activated") == []  # the send is still stuck meanwhile
    finally:
        gate.set()  # else stopping the sweeper would wait for the stuck send forever
    await bot.inbox.wait_for("expired", within=30)
    assert [to for _, to, _ in bot.inbox.of("expired")] == [BOB]


async def test_a_read_pokes_nothing_and_an_idle_sweep_never_waits_for_the_write_lock(bot, db_url):
    bot.sweeper.start()
    await bot.inbox.wait_for("assigned", count=5, within=30)
    await bot.idle()
    jobs = {job.id for job in bot.sweeper.scheduler.get_jobs()}
    roles = await bot.say(BOB, "roles")
    assert [line.role.id for line in roles.roles] == ["global-admin", "helpdesk-admin", "quick"]
    bot.sweeper.poke()  # every command pokes; one that queued nothing wakes nobody
    assert {job.id for job in bot.sweeper.scheduler.get_jobs()} == jobs == {"sweep"}
    # With nothing due, a sweep only reads: it runs while another connection writes.
    with write_lock(db_url) if db_url.startswith("sqlite") else nullcontext():
        await asyncio.wait_for(bot.sweeper.tick(), 15)  # a writer would wait 30 s (busy timeout)
    reply = await bot.say(BOB, "activate helpdesk-admin 1h reset a password")
    assert reply.ok, reply.text
    bot.sweeper.poke()
    await bot.inbox.wait_for("activated", within=30)
    assert [to for _, to, _ in bot.inbox.of("activated")] == [BOB]
