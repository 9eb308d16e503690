"""Sending the digest: one message per admin through the outbox, audited, alerts only when
new, and each period exactly once however often (and by however many) it is triggered."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import func, select, update

from bot.config import Settings
from bot.digest_schedule import latest_firing
from bot.outbox import Delivery, Recipient
from bot.runtime import Runtime
from cards import views as v
from cards.views import AlertLine, DigestView, Notification, Reply
from handlers.chat import command_table, run_text
from handlers.clock import FixedClock
from handlers.digest import send as digest_send
from handlers.digest.report import DigestOptions
from handlers.digest.send import (
    DIGEST_TIMER,
    SENT,
    catch_up_digest,
    digest_key,
    digest_timer_action,
    schedule_digest,
    send_digest,
)
from handlers.timers import lifecycle_actions, one_by_one, run_due_timers
from storage.models import AuditEvent, OutboxMessage, Principal, Timer
from tests.unit.conftest import T0, Engine, seed
from vocab.states import OutboxStatus, TimerStatus

ALICE, BOB, DAVE = "alice@contoso.com", "bob@contoso.com", "dave@contoso.com"
OPTIONS = DigestOptions()
ACTIONS = {**lifecycle_actions(), DIGEST_TIMER: one_by_one(digest_timer_action(OPTIONS))}


async def make_admin(eng: Engine, email: str) -> None:
    async with eng.uow.transaction() as s:
        await s.execute(update(Principal).where(Principal.email == email).values(admin=True))


async def digests(eng: Engine, kind: str = v.DIGEST) -> list[tuple[str | None, Notification]]:
    return [(to, Notification.from_dict(payload)) for to, _, payload in await eng.outbox(kind)]


async def sent_events(eng: Engine) -> list[AuditEvent]:
    async with eng.uow.transaction() as s:
        return list(
            (
                await s.scalars(
                    select(AuditEvent).where(AuditEvent.action == SENT).order_by(AuditEvent.id)
                )
            ).all()
        )


async def digest_timers(eng: Engine) -> list[tuple[str | None, str]]:
    async with eng.uow.transaction() as s:
        rows = (
            await s.execute(
                select(Timer.key, Timer.status)
                .where(Timer.kind == DIGEST_TIMER)
                .order_by(Timer.key)
            )
        ).all()
    return [(key, status) for key, status in rows]


# --- send_digest -------------------------------------------------------------------------------


async def test_one_digest_per_admin_in_the_outbox_and_one_audit_event(eng):
    await make_admin(eng, DAVE)
    end = T0 + timedelta(days=3)
    eng.clock.set(end + timedelta(minutes=2))
    assert await send_digest(eng.uow, eng.clock, period_end=end, options=OPTIONS) == 2
    got = await digests(eng)
    assert sorted(to for to, _ in got) == [ALICE, DAVE]  # every admin, nobody else
    for _, note in got:
        assert note.kind == v.DIGEST and note.headline.startswith("PIM digest for ")
        assert isinstance(note.digest, DigestView)
        assert datetime.fromisoformat(note.digest.period_end) == end
        assert [f.label for f in note.digest.tiles][0] == "Activations"
    async with eng.uow.transaction() as s:  # '*': fanned out per transport on delivery
        assert set((await s.scalars(select(OutboxMessage.transport))).all()) == {"*"}
    [event] = await sent_events(eng)
    assert event.actor == "pim-bot" and event.target == digest_key(end)
    assert event.details["admins"] == 2 and event.at == eng.clock.now()


async def test_the_same_period_is_sent_once_however_often_asked(eng):
    assert await send_digest(eng.uow, eng.clock, period_end=T0, options=OPTIONS) == 1
    assert await send_digest(eng.uow, eng.clock, period_end=T0, options=OPTIONS) == 0
    # the same instant written in another time zone is the same period
    berlin = T0.astimezone(ZoneInfo("Europe/Berlin"))
    assert await send_digest(eng.uow, eng.clock, period_end=berlin, options=OPTIONS) == 0
    assert len(await digests(eng)) == 1 and len(await sent_events(eng)) == 1
    assert await digest_timers(eng) == [(digest_key(T0), "done")]


async def test_no_admins_means_nothing_is_written(eng):
    async with eng.uow.transaction() as s:
        await s.execute(update(Principal).values(admin=False))
    assert await send_digest(eng.uow, eng.clock, period_end=T0, options=OPTIONS) == 0
    assert await digests(eng) == [] and await sent_events(eng) == []


async def test_the_digest_is_computed_in_pim_timezone(eng):
    berlin = DigestOptions(timezone="Europe/Berlin")
    await send_digest(eng.uow, eng.clock, period_end=T0, options=berlin)
    [(_, note)] = await digests(eng)
    assert note.digest is not None and note.digest.timezone == "Europe/Berlin"
    assert note.headline == "PIM digest for Fri 20 Nov 10:00 – Fri 27 Nov 2026 10:00"


# --- alerts: their own message only when new ----------------------------------------------------


def alert(code: str, severity: str = "high") -> AlertLine:
    return AlertLine(code=code, severity=severity, text=f"Alert {code} ({severity})")


@pytest.fixture
def alerts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[AlertLine, ...]]:
    """Each send takes the next tuple of alerts as what compute_digest found."""
    queue: list[tuple[AlertLine, ...]] = []
    real = digest_send.compute_digest

    async def fake(uow: Any, **kw: Any) -> DigestView:
        return replace(await real(uow, **kw), alerts=queue.pop(0))

    monkeypatch.setattr(digest_send, "compute_digest", fake)
    return queue


async def send_week(eng: Engine, week: int) -> None:
    end = T0 + timedelta(weeks=week)
    eng.clock.set(end)
    assert await send_digest(eng.uow, eng.clock, period_end=end, options=OPTIONS) == 2


async def test_a_high_alert_gets_its_own_message_only_the_first_time(eng, alerts):
    await make_admin(eng, DAVE)
    alerts += [
        (alert("perm:ga"), alert("stale:bob", "medium")),  # the high one is new
        (alert("perm:ga"), alert("stale:bob", "medium")),  # nothing new
        (alert("perm:ga"), alert("freq:bob"), alert("stale:bob", "high")),  # two new highs
        (),  # all gone
        (alert("perm:ga"),),  # back again: new again
    ]
    seen: list[list[tuple[str | None, str]]] = []
    for week in range(5):
        before = len(await digests(eng, v.ALERT))
        await send_week(eng, week)
        seen.append(sorted((to, n.headline) for to, n in (await digests(eng, v.ALERT))[before:]))
    assert seen == [
        [(ALICE, "Alert perm:ga (high)"), (DAVE, "Alert perm:ga (high)")],
        [],
        [
            (ALICE, "Alert freq:bob (high)"),
            (ALICE, "Alert stale:bob (high)"),
            (DAVE, "Alert freq:bob (high)"),
            (DAVE, "Alert stale:bob (high)"),
        ],
        [],
        [(ALICE, "Alert perm:ga (high)"), (DAVE, "Alert perm:ga (high)")],
    ]
    # every digest still lists every alert; the audit remembers what was new
    assert [len(n.digest.alerts) for to, n in await digests(eng) if to == ALICE] == [2, 2, 3, 0, 1]
    assert [e.details["new_alerts"] for e in await sent_events(eng)] == [
        ["perm:ga"],
        [],
        ["freq:bob", "stale:bob"],
        [],
        ["perm:ga"],
    ]


async def test_a_burst_of_new_alerts_is_capped(eng, alerts):
    alerts.append(tuple(alert(f"a{i:02}") for i in range(12)))
    eng.clock.set(T0)
    await send_digest(eng.uow, eng.clock, period_end=T0, options=OPTIONS)
    got = [n for _, n in await digests(eng, v.ALERT)]
    assert len(got) == digest_send.SEPARATE_ALERTS + 1
    assert got[-1].headline == "7 more new high-severity PIM alerts"
    assert len(got[-1].details) == 7


# --- the timer: exactly once, whoever triggers it ------------------------------------------------


async def test_the_timer_key_makes_each_period_go_out_once(eng):
    await make_admin(eng, DAVE)
    end = T0 + timedelta(hours=1)
    # two replicas' cron jobs fire for the same period, one of them twice
    assert await schedule_digest(eng.uow, period_end=end) is True
    assert await schedule_digest(eng.uow, period_end=end) is False
    assert (
        await schedule_digest(eng.uow, period_end=end.astimezone(ZoneInfo("Asia/Tokyo"))) is False
    )
    eng.clock.set(end - timedelta(seconds=1))
    assert await run_due_timers(eng.uow, eng.clock, worker="a", actions=ACTIONS) == 0  # not due yet
    eng.clock.set(end + timedelta(seconds=3))
    assert await run_due_timers(eng.uow, eng.clock, worker="a", actions=ACTIONS) == 1
    assert await run_due_timers(eng.uow, eng.clock, worker="b", actions=ACTIONS) == 0
    # a late cron run, a manual send of that period: still nothing more
    assert await schedule_digest(eng.uow, period_end=end) is False
    assert await send_digest(eng.uow, eng.clock, period_end=end, options=OPTIONS) == 0
    got = await digests(eng)
    assert sorted(to for to, _ in got) == [ALICE, DAVE]
    # the period is the firing time, not the (later) time it was sent
    assert {datetime.fromisoformat(n.digest.period_end) for _, n in got} == {end}
    assert await digest_timers(eng) == [(digest_key(end), "done")]
    assert len(await sent_events(eng)) == 1


async def test_a_scheduled_digest_sent_by_hand_first_is_not_sent_again(eng):
    assert await schedule_digest(eng.uow, period_end=T0) is True
    assert await send_digest(eng.uow, eng.clock, period_end=T0, options=OPTIONS) == 1
    assert await run_due_timers(eng.uow, eng.clock, worker="a", actions=ACTIONS) == 0
    assert len(await digests(eng)) == 1


async def test_catch_up_sends_only_the_most_recent_missed_digest(eng):
    weeks = [T0 + timedelta(weeks=i) for i in range(4)]
    # a replica scheduled week 0 and died before sending it; nothing ran for three weeks
    assert await schedule_digest(eng.uow, period_end=weeks[0]) is True
    eng.clock.set(weeks[3] + timedelta(hours=5))
    assert await catch_up_digest(eng.uow, eng.clock, latest=weeks[3]) is True
    assert await run_due_timers(eng.uow, eng.clock, worker="a", actions=ACTIONS) == 1
    got = await digests(eng)
    assert [datetime.fromisoformat(n.digest.period_end) for _, n in got] == [weeks[3]]
    assert await digest_timers(eng) == [
        (digest_key(weeks[0]), "canceled"),
        (digest_key(weeks[3]), "done"),
    ]
    # the next start-up finds it sent
    assert await catch_up_digest(eng.uow, eng.clock, latest=weeks[3]) is False
    assert await run_due_timers(eng.uow, eng.clock, worker="a", actions=ACTIONS) == 0
    assert len(await digests(eng)) == 1


async def test_no_catch_up_for_a_firing_before_any_admin_existed(eng):
    # a fresh installation: the cron fired before anyone was set up, so nothing was missed
    assert await catch_up_digest(eng.uow, eng.clock, latest=T0 - timedelta(seconds=1)) is False
    assert await digest_timers(eng) == []
    assert await catch_up_digest(eng.uow, eng.clock, latest=T0) is True


# --- the chat preview --------------------------------------------------------------------------


async def test_digest_in_chat_is_an_admin_preview_that_records_nothing(eng):
    before = await eng.snapshot()
    refused = await run_text(
        eng.uow, eng.clock, commands=command_table(digest=OPTIONS), actor=BOB, text="digest"
    )
    assert refused == Reply(text="Only admins can preview the digest.", ok=False)
    view = await run_text(
        eng.uow, eng.clock, commands=command_table(digest=OPTIONS), actor=ALICE, text="digest"
    )
    assert isinstance(view, DigestView)
    assert datetime.fromisoformat(view.period_end) == eng.clock.now()
    assert await eng.snapshot() == before


# --- when the cron last fired ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "tz", "now", "expected"),
    [
        # Monday 09:00 Berlin, in winter (UTC+1) and in summer (UTC+2, after 29 March 2026)
        ("0 9 * * mon", "Europe/Berlin", "2026-03-30T06:59:59+00:00", "2026-03-23T08:00:00+00:00"),
        ("0 9 * * mon", "Europe/Berlin", "2026-03-30T07:00:00+00:00", "2026-03-30T07:00:00+00:00"),
        (
            "0 9 * * mon",
            "Europe/Berlin",
            "2026-03-30T07:00:00.7+00:00",
            "2026-03-30T07:00:00+00:00",
        ),
        ("0 9 * * mon", "UTC", "2026-11-27T09:00:00+00:00", "2026-11-23T09:00:00+00:00"),
        ("* * * * *", "UTC", "2026-11-27T09:00:59.999+00:00", "2026-11-27T09:00:00+00:00"),
        ("0 0 29 2 *", "UTC", "2026-11-27T09:00:00+00:00", "2024-02-29T00:00:00+00:00"),
        ("* * 1 * *", "UTC", "2026-11-15T00:00:00+00:00", "2026-11-01T23:59:00+00:00"),
    ],
)
def test_latest_firing(cron: str, tz: str, now: str, expected: str) -> None:
    trigger = CronTrigger.from_crontab(cron, timezone=ZoneInfo(tz))
    at = latest_firing(trigger, datetime.fromisoformat(now))
    assert at is not None and at == datetime.fromisoformat(expected)


def test_a_cron_that_never_fired_has_no_latest_firing() -> None:
    trigger = CronTrigger.from_crontab("0 0 31 2 *", timezone=UTC)  # 31 February
    assert latest_firing(trigger, datetime(2026, 11, 27, tzinfo=UTC)) is None


# --- the running bot: a digest missed while down goes out at the next start ---------------------


@dataclass
class Inbox:
    name: str = "console"
    got: list[tuple[str, str, str]] = field(default_factory=list)

    def reaches(self, recipient: Recipient | None, channel: dict[str, str] | None) -> bool:
        return recipient is not None

    async def send(self, delivery: Delivery) -> dict[str, Any] | None:
        assert delivery.recipient is not None
        if delivery.note.digest is not None:  # not the seed's "you are eligible" messages
            self.got.append(
                (delivery.recipient.email, delivery.kind, delivery.note.digest.period_end)
            )
        return None

    async def update(self, delivery: Delivery) -> None:
        raise AssertionError("nothing to redraw")


async def run_bot(db_url: str, clock: FixedClock, seconds: float) -> Inbox:
    settings = Settings.from_env(
        {"DATABASE_URL": db_url, "PIM_DIGEST_CRON": "0 9 * * mon", "PIM_TIMEZONE": "Europe/Berlin"}
    )
    runtime = Runtime.build(settings, clock=clock)
    inbox = Inbox()
    runtime.start_background([inbox])
    # Until the first sweep (which catches up a missed digest) has run and left nothing to
    # do: no message waiting to go out, no timer due. A second digest could only come from
    # one of those, so nothing more can arrive after this.
    deadline = time.monotonic() + seconds
    while not await settled(runtime, clock):
        assert time.monotonic() < deadline, "the bot did not settle"
        await asyncio.sleep(0.02)
    await runtime.close()
    return inbox


async def settled(runtime: Runtime, clock: FixedClock) -> bool:
    assert runtime.sweeper is not None
    if runtime.sweeper.sweeps == 0:
        return False
    async with runtime.uow.read() as s:
        waiting = await s.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.status.in_([OutboxStatus.PENDING, OutboxStatus.SENDING]))
        )
        due = await s.scalar(
            select(func.count())
            .select_from(Timer)
            .where(
                Timer.status.in_([TimerStatus.PENDING, TimerStatus.RUNNING]),
                Timer.due_at <= clock.now(),
            )
        )
    return waiting == 0 and due == 0


async def test_the_bot_sends_a_missed_digest_at_start_and_only_once(db_url):
    from storage.db import make_engine
    from storage.uow import UnitOfWork

    setup = FixedClock(datetime(2026, 11, 1, tzinfo=UTC))
    engine = make_engine(db_url)
    await seed(UnitOfWork(engine), setup)  # Alice, admin since 1 November
    await engine.dispose()
    # down over Monday 23 November 09:00 Berlin (08:00 UTC) — and over the weeks before it
    clock = FixedClock(datetime(2026, 11, 24, 12, tzinfo=UTC))
    first = await run_bot(db_url, clock, seconds=10)
    assert first.got == [(ALICE, v.DIGEST, "2026-11-23T08:00:00+00:00")]
    again = await run_bot(db_url, clock, seconds=10)  # a restart sends nothing more
    assert again.got == []
