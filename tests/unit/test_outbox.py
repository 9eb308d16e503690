"""The delivery worker (README, "Delivery"): every message reaches each transport that can
reach its recipient exactly once, cards are redrawn after they are posted, and failures are
retried with backoff (honouring Retry-After) until the worker gives up."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bot.outbox import MAX_ATTEMPTS, Delivery, OutboxWorker, Recipient, RetryLater, Undeliverable
from cards.views import Notification
from handlers.records import notify
from storage.db import make_engine
from storage.models import OutboxMessage, Principal
from storage.uow import UnitOfWork
from tests.unit.helpers import outbox_worker, say

BOB, CAROL, DAVE, ALICE = (
    "bob@contoso.com",
    "carol@contoso.com",
    "dave@contoso.com",
    "alice@contoso.com",
)


class Recorder:
    """A fake transport. Records what it posted and redrew (in one shared log, so the order
    across transports shows), and fails on request: `fail[kind]` is a list of exceptions to
    raise, one per attempt, before it starts succeeding."""

    def __init__(
        self,
        name: str = "slack",
        *,
        reaches: set[str] | None = None,
        log: list[tuple[str, str, str, Any, int]] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.name = name
        self.delay = delay  # seconds a send takes, like a network call
        self.only = reaches  # None: everyone
        self.log = log if log is not None else []
        self.fail: dict[str, list[Exception]] = {}
        self.attempts = 0

    def reaches(self, recipient: Recipient | None, channel: dict[str, str] | None) -> bool:
        return recipient is not None and (self.only is None or recipient.email in self.only)

    def _maybe_fail(self, delivery: Delivery) -> None:
        self.attempts += 1
        queue = self.fail.get(delivery.kind) or self.fail.get("*")
        if queue:
            raise queue.pop(0)

    async def send(self, delivery: Delivery) -> dict[str, Any] | None:
        self._maybe_fail(delivery)
        await asyncio.sleep(self.delay)  # let a concurrent worker run
        to = delivery.recipient.email if delivery.recipient else "-"
        self.log.append((self.name, delivery.kind, to, delivery.note.headline, delivery.id))
        return {"msg": f"{self.name}:{delivery.kind}:{to}"}

    async def update(self, delivery: Delivery) -> None:
        self._maybe_fail(delivery)
        await asyncio.sleep(0)
        self.log.append(
            (
                self.name,
                delivery.kind,
                "-",
                (delivery.note.headline, [p["msg"] for p in delivery.posted]),
                delivery.id,
            )
        )

    def got(self, kind: str) -> list[tuple[str, Any]]:
        return [(to, what) for name, k, to, what, _ in self.log if name == self.name and k == kind]


async def rows(eng, kind: str) -> list[tuple[str, str, str | None]]:
    """(transport, status, recipient email) of every outbox row of this kind."""
    async with eng.uow.transaction() as s:
        out = []
        for m in (
            await s.scalars(
                select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id)
            )
        ).all():
            who = (await s.get(Principal, m.recipient_id)).email if m.recipient_id else None
            out.append((m.transport, m.status, who))
        return out


async def the_row(eng, kind: str, transport: str = "slack") -> OutboxMessage:
    async with eng.uow.transaction() as s:
        return (
            await s.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.kind == kind, OutboxMessage.transport == transport
                )
            )
        ).one()


async def drained(worker: OutboxWorker) -> None:
    """Deliver what the seed wrote (everyone's 'assigned' notices), so a test starts clean."""
    await worker.run_once()
    for t in worker.transports.values():
        t.attempts = 0  # type: ignore[attr-defined]


def pending_headline(rid: str) -> str:
    return (
        f"Request {rid} for Global Administrator is waiting for approval "
        "(until 2026-11-28 09:00 UTC)."
    )


async def test_cards_are_delivered_once(eng):
    t = Recorder()
    worker = outbox_worker(eng.uow, eng.clock, [t], worker="w1")
    reply = await say(eng, BOB, "activate global-admin 1h rotate the break-glass keys")
    rid = reply.request.id
    assert await worker.run_once() > 0
    assert t.got("approval_needed") == [
        (CAROL, "Bob Builder asks for Global Administrator for 1h.")
    ]
    assert t.got("submitted") == [(BOB, pending_headline(rid))]
    assert sorted(t.got("assigned")) == sorted(
        [
            (BOB, "You are now eligible for Global Administrator permanently."),
            (BOB, "You are now eligible for Helpdesk Administrator permanently."),
            (BOB, "You are now eligible for Quick Role permanently."),
            (DAVE, "You are now eligible for Billing Administrator permanently."),
            (CAROL, "You are now eligible for Global Administrator permanently."),
        ]
    )
    sent = len(t.log)
    assert await worker.run_once() == 0
    assert len(t.log) == sent
    assert await rows(eng, "approval_needed") == [("*", "fanned", CAROL), ("slack", "sent", CAROL)]


async def test_fan_out_follows_who_each_transport_reaches(eng):
    log: list = []
    slack = Recorder("slack", reaches={BOB, CAROL}, log=log)
    teams = Recorder("teams", reaches={CAROL}, log=log)
    worker = outbox_worker(eng.uow, eng.clock, [slack, teams], worker="w1")
    rid = (await say(eng, BOB, "activate global-admin 1h rotate the break-glass keys")).request.id
    await worker.run_once()
    card = "Bob Builder asks for Global Administrator for 1h."
    assert slack.got("approval_needed") == [(CAROL, card)]
    assert teams.got("approval_needed") == [(CAROL, card)]
    assert slack.got("submitted") == [(BOB, pending_headline(rid))]
    assert teams.got("submitted") == []
    # no row at all for the transport that cannot reach Bob
    assert await rows(eng, "submitted") == [("*", "fanned", BOB), ("slack", "sent", BOB)]
    # Dave is reached by nobody: his notice is marked, not retried for ever
    dave = [r for r in await rows(eng, "assigned") if r[2] == DAVE]
    assert dave == [("*", "unreachable", DAVE)]
    assert all(to != DAVE for _, _, to, _, _ in log)

    await say(eng, CAROL, f"approve {rid} keys rotate quarterly")
    for _ in range(5):  # however the worker paces the redraw, it ends up done once
        eng.clock.advance(timedelta(seconds=1))
        await worker.run_once()
    outcome = "Approved by Carol Chen at 2026-11-27 09:00 UTC: keys rotate quarterly"
    # each transport redraws only the copies it posted itself
    assert slack.got("request_update") == [
        (
            "-",
            (
                outcome,
                ["slack:approval_needed:carol@contoso.com", "slack:submitted:bob@contoso.com"],
            ),
        )
    ]
    assert teams.got("request_update") == [
        ("-", (outcome, ["teams:approval_needed:carol@contoso.com"]))
    ]


async def test_cards_are_redrawn_after_a_decision(eng):
    t = Recorder()
    worker = outbox_worker(eng.uow, eng.clock, [t], worker="w1")
    rid = (await say(eng, BOB, "activate global-admin 1h rotate the break-glass keys")).request.id
    await worker.run_once()
    eng.clock.advance(timedelta(minutes=3))
    await say(eng, CAROL, f"approve {rid} fine")
    assert await worker.run_once() == 3
    outcome = "Approved by Carol Chen at 2026-11-27 09:03 UTC: fine"
    assert t.got("request_update") == [
        (
            "-",
            (
                outcome,
                ["slack:approval_needed:carol@contoso.com", "slack:submitted:bob@contoso.com"],
            ),
        )
    ]
    assert t.got("approved") == [
        (BOB, f"Carol Chen approved your request {rid} for Global Administrator.")
    ]
    assert t.got("activated") == [
        (BOB, "Global Administrator is active until 2026-11-27 10:03 UTC.")
    ]
    assert await worker.run_once() == 0
    assert len(t.got("request_update")) == 1


async def test_a_decision_before_the_cards_went_out_waits_for_them(eng):
    """Asked and approved before the worker ran: the redraw must not overtake the cards."""
    t = Recorder()
    worker = outbox_worker(eng.uow, eng.clock, [t], worker="w1")
    rid = (await say(eng, BOB, "activate global-admin 1h rotate the break-glass keys")).request.id
    await say(eng, CAROL, f"approve {rid} fine")
    for _ in range(5):
        await worker.run_once()
        eng.clock.advance(timedelta(seconds=1))
    kinds = [k for _, k, _, _, _ in t.log]
    assert kinds.count("request_update") == 1
    assert kinds.index("request_update") > kinds.index("approval_needed")
    assert kinds.index("request_update") > kinds.index("submitted")
    ((_, (headline, posted)),) = t.got("request_update")
    assert headline == "Approved by Carol Chen at 2026-11-27 09:00 UTC: fine"
    assert posted == ["slack:approval_needed:carol@contoso.com", "slack:submitted:bob@contoso.com"]


async def test_redraw_waits_while_the_card_is_still_failing(eng):
    t = Recorder()
    t.fail["approval_needed"] = [ConnectionError("slack unreachable")] * 3
    worker = outbox_worker(eng.uow, eng.clock, [t], worker="w1")
    rid = (await say(eng, BOB, "activate global-admin 1h rotate the break-glass keys")).request.id
    await worker.run_once()
    assert t.got("approval_needed") == [] and len(t.got("submitted")) == 1
    await say(eng, CAROL, f"approve {rid} fine")
    await worker.run_once()
    assert t.got("approved") and t.got("request_update") == []  # due, but the card is not out
    for _ in range(60):
        eng.clock.advance(timedelta(seconds=1))
        await worker.run_once()
    kinds = [k for _, k, _, _, _ in t.log]
    assert kinds.count("approval_needed") == 1 and kinds.count("request_update") == 1
    assert kinds.index("request_update") > kinds.index("approval_needed")
    ((_, (_, posted)),) = t.got("request_update")
    assert posted == ["slack:submitted:bob@contoso.com", "slack:approval_needed:carol@contoso.com"]
    assert (await the_row(eng, "approval_needed")).status == "sent"


async def test_retry_after_is_honoured(eng):
    t = Recorder()
    worker = outbox_worker(eng.uow, eng.clock, [t], worker="w1")
    await drained(worker)
    t.fail["activated"] = [RetryLater(30)]
    await say(eng, BOB, "activate quick 5m")
    asked_at = eng.clock.now()
    assert await worker.run_once() == 0
    assert t.got("activated") == []
    row = await the_row(eng, "activated")
    assert row.status == "pending" and row.next_attempt_at == asked_at + timedelta(seconds=30)
    eng.clock.advance(timedelta(seconds=29))
    assert await worker.run_once() == 0
    eng.clock.advance(timedelta(seconds=1))
    assert await worker.run_once() == 1
    assert t.got("activated") == [(BOB, "Quick Role is active until 2026-11-27 09:05 UTC.")]
    eng.clock.advance(timedelta(minutes=10))
    assert await worker.run_once() == 0
    assert len(t.got("activated")) == 1
    assert t.attempts == 2
    assert (await the_row(eng, "activated")).status == "sent"


async def test_failures_back_off_then_give_up(eng):
    t = Recorder()
    worker = outbox_worker(eng.uow, eng.clock, [t], worker="w1")
    await drained(worker)
    t.fail["activated"] = [RuntimeError("slack is down")] * 100
    await say(eng, BOB, "activate quick 5m")
    waits = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        assert await worker.run_once() == 0
        assert t.attempts == attempt
        row = await the_row(eng, "activated")
        assert row.attempts == attempt and "slack is down" in (row.last_error or "")
        if attempt < MAX_ATTEMPTS:
            assert row.status == "pending"
            wait = row.next_attempt_at - eng.clock.now()
            waits.append(wait)
            # not retried before the wait is over
            eng.clock.advance(wait - timedelta(seconds=1))
            assert await worker.run_once() == 0 and t.attempts == attempt
            eng.clock.advance(timedelta(seconds=1))
    assert row.status == "failed"
    assert waits == sorted(waits) and waits[0] < waits[-1]
    assert waits[0] >= timedelta(seconds=1) and waits[-1] <= timedelta(minutes=10)
    eng.clock.advance(timedelta(days=1))
    assert await worker.run_once() == 0
    assert t.attempts == MAX_ATTEMPTS and t.got("activated") == []


async def test_two_workers_deliver_each_message_once(eng, db_url):
    for i in range(6):
        await say(eng, ALICE, f"assign dave@contoso.com quick active {i + 1}h on call")
        await say(eng, ALICE, "remove dave@contoso.com quick active")
    rid = (await say(eng, BOB, "activate global-admin 1h rotate the break-glass keys")).request.id
    await say(eng, CAROL, f"approve {rid} fine")
    other = make_engine(db_url)  # a second "process" with its own connections
    try:
        log: list = []
        # Sends take a moment, as over a network, and each worker has few in flight: while
        # one worker's sends are out, the other claims (on SQLite, gets the write lock).
        by = {
            w: [
                Recorder("slack", log=log, delay=0.02),
                Recorder("teams", reaches={CAROL, DAVE}, log=log, delay=0.02),
            ]
            for w in ("w1", "w2")
        }
        w1 = outbox_worker(eng.uow, eng.clock, by["w1"], worker="w1", batch=3, concurrency=3)
        w2 = outbox_worker(
            UnitOfWork(other), eng.clock, by["w2"], worker="w2", batch=3, concurrency=3
        )
        for _ in range(5):
            await asyncio.gather(w1.run_once(), w2.run_once())
            eng.clock.advance(timedelta(seconds=1))
    finally:
        await other.dispose()
    keys = [(name, kind, to, row) for name, kind, to, _, row in log]
    assert len(keys) == len(set(keys)), [k for k in keys if keys.count(k) > 1]
    # Both workers delivered: the second one's claims were not all empty.
    delivered = {w: sum(t.attempts for t in by[w]) for w in by}
    assert delivered["w1"] > 0 and delivered["w2"] > 0, delivered
    assert delivered["w1"] + delivered["w2"] == len(keys)
    async with eng.uow.transaction() as s:
        children = (
            await s.scalars(select(OutboxMessage).where(OutboxMessage.transport != "*"))
        ).all()
        parents = (
            await s.scalars(select(OutboxMessage).where(OutboxMessage.transport == "*"))
        ).all()
    assert {m.status for m in parents} == {"fanned"}
    assert {m.status for m in children} == {"sent"}
    assert len(keys) == len(children)
    # 5 seed notices, 12 to Dave, 2 cards, approved + redraw + activated; Teams reaches
    # Dave and Carol (Carol's seed notice, 12 to Dave, her card, the redraw)
    assert sum(1 for k in keys if k[0] == "slack") == 5 + 12 + 2 + 3
    assert sum(1 for k in keys if k[0] == "teams") == 2 + 12 + 1 + 1
    for name in ("slack", "teams"):
        updates = [what for n, k, _, what, _ in log if n == name and k == "request_update"]
        assert len(updates) == 1 and f"{name}:approval_needed:carol@contoso.com" in updates[0][1]


# --- order and concurrency ---------------------------------------------------------------------


async def approved_and_activated(eng, worker: OutboxWorker) -> str:
    """Bob asks, the cards go out, Carol approves: "approved" then "activated" are queued
    for Bob in one transaction."""
    rid = (await say(eng, BOB, "activate global-admin 1h rotate the break-glass keys")).request.id
    await worker.run_once()
    await say(eng, CAROL, f"approve {rid} fine")
    return rid


async def test_a_refused_notice_holds_back_the_next_one_to_that_person(eng):
    t = Recorder()
    worker = outbox_worker(eng.uow, eng.clock, [t], worker="w1")
    await drained(worker)
    t.fail["approved"] = [RetryLater(30)]
    rid = await approved_and_activated(eng, worker)
    await worker.run_once()
    # the redraw is no message to Bob and goes; "activated" waits for "approved"
    assert t.got("approved") == [] and t.got("activated") == []
    assert len(t.got("request_update")) == 1
    eng.clock.advance(timedelta(seconds=29))
    assert await worker.run_once() == 0
    eng.clock.advance(timedelta(seconds=1))
    assert await worker.run_once() == 2
    to_bob = [what for _, kind, to, what, _ in t.log if kind in ("approved", "activated")]
    assert to_bob == [
        f"Carol Chen approved your request {rid} for Global Administrator.",
        "Global Administrator is active until 2026-11-27 10:00 UTC.",
    ]


async def test_a_failing_notice_to_one_person_does_not_hold_back_others(eng):
    t = Recorder()
    worker = outbox_worker(eng.uow, eng.clock, [t], worker="w1")
    await drained(worker)
    t.log.clear()
    t.fail["approved"] = [ConnectionError("slack unreachable")] * 3
    await approved_and_activated(eng, worker)
    await say(eng, ALICE, "assign dave@contoso.com quick active 1h on call")
    await worker.run_once()
    assert t.got("activated") == []  # Bob's: behind his "approved"
    assert [to for to, _ in t.got("assigned")] == [DAVE]  # Dave's is nobody's business
    for _ in range(3):
        eng.clock.advance(timedelta(minutes=10))
        await worker.run_once()
    kinds = [k for _, k, to, _, _ in t.log if to == BOB]
    assert kinds[-2:] == ["approved", "activated"]


async def test_an_undeliverable_notice_lets_the_next_one_go(eng):
    """The rule for rows that end Undeliverable (or fail for good): they no longer hold
    anything back; the person gets what can still be delivered, in order."""
    t = Recorder()
    worker = outbox_worker(eng.uow, eng.clock, [t], worker="w1")
    await drained(worker)
    t.fail["approved"] = [Undeliverable("message too long")]
    await approved_and_activated(eng, worker)
    await worker.run_once()
    assert t.got("approved") == []
    assert t.got("activated") == [
        (BOB, "Global Administrator is active until 2026-11-27 10:00 UTC.")
    ]
    assert (await the_row(eng, "approved")).status == "unreachable"


class Gate(Recorder):
    """Holds every send until released, and records how many ran at once (overall and per
    person)."""

    def __init__(self) -> None:
        super().__init__()
        self.running: dict[str, int] = {}
        self.peak = 0
        self.peak_per_person = 0

    async def send(self, delivery: Delivery) -> dict[str, Any] | None:
        to = delivery.recipient.email if delivery.recipient else "-"
        self.running[to] = self.running.get(to, 0) + 1
        self.peak = max(self.peak, sum(self.running.values()))
        self.peak_per_person = max(self.peak_per_person, self.running[to])
        await asyncio.sleep(0.01)
        self.running[to] -= 1
        return await super().send(delivery)


async def test_sends_run_at_once_up_to_the_pool_and_each_person_gets_them_in_order(eng):
    async with eng.uow.transaction() as s:
        people = [
            Principal(email=f"p{i}@contoso.com", display_name=f"P {i}", created_at=eng.clock.now())
            for i in range(12)
        ]
        s.add_all(people)
        await s.flush()
        for step in range(3):
            for p in people:
                notify(
                    s,
                    now=eng.clock.now(),
                    recipients=[p],
                    note=Notification(kind="assigned", headline=f"{p.email} step {step}"),
                )
    t = Gate()
    worker = outbox_worker(eng.uow, eng.clock, [t], worker="w1", concurrency=5)
    assert await worker.run_once() == 5 + 36  # the seed's notices, then ours
    assert t.peak == 5 and t.peak_per_person == 1
    for i in range(12):
        who = f"p{i}@contoso.com"
        assert [what for to, what in t.got("assigned") if to == who] == [
            f"{who} step {step}" for step in range(3)
        ]
