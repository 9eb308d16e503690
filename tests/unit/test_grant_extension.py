"""An activation's end moves, and so does its grant: through the real engine, the real grant
worker and the real webhook provider, against a receiver on loopback that verifies every
signature. Reads as: Bob's access is granted; Bob extends; the receiver hears
`grant.extended` with the new end, once; the access ends at the new end, revoked once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select, update

from bot.grants_worker import GrantsWorker
from storage.audit import verify_chain
from storage.models import AuditEvent, Schedule
from tests.unit.conftest import T0
from tests.unit.helpers import ALICE, BOB, CAROL, say
from tests.unit.test_grants import close, later, rows, with_webhook, worker
from tests.webhookfake import WebhookReceiver
from vocab.states import GrantStatus, ScheduleKind

NEW_END = "2026-11-27T09:50:00Z"  # quick activated at 09:00 for 30m, extended by 20m


async def activate_quick(eng, w: GrantsWorker) -> None:
    await say(eng, BOB, "activate quick 30m checking")
    assert await w.run_once() == 1


async def audited(eng) -> list[tuple[str, dict]]:
    async with eng.uow.read() as s:
        events = (await s.scalars(select(AuditEvent).order_by(AuditEvent.id))).all()
        return [(e.action, e.details) for e in events]


async def test_extending_moves_the_grants_end_and_expiry_revokes_once(eng):
    async with WebhookReceiver() as hook:
        await with_webhook(eng, hook.url, role="quick")
        w = worker(eng)
        await activate_quick(eng, w)
        eng.clock.advance(timedelta(minutes=25))
        await say(eng, BOB, "extend quick 20m still checking")
        (g,) = await rows(eng)
        assert g.status == GrantStatus.PENDING_EXTENSION
        extended = [p for who, _, p in await eng.outbox("activated") if who == BOB][-1]
        assert extended["headline"] == "Quick Role is extended until 2026-11-27 09:50 UTC."
        assert extended["details"] == ["webhook: moving the end…"]

        assert await w.run_once() == 1
        assert await w.run_once() == 0  # nothing twice
        (g,) = await rows(eng)
        assert g.status == GrantStatus.PROVISIONED
        activated, ext = hook.deliveries
        assert (ext.type, ext.body["data"]["end"]) == ("grant.extended", NEW_END)
        assert activated.body["data"]["end"] == "2026-11-27T09:30:00Z"
        assert ext.webhook_id != activated.webhook_id
        status = [p["headline"] for who, _, p in await eng.outbox("grant_status") if who == BOB]
        assert status == [
            "Quick Role is active in webhook.",
            "Quick Role in webhook now lasts until 2026-11-27 09:50 UTC.",
        ]
        events = await audited(eng)
        queued = [d for a, d in events if a == "grant.extending"]
        assert queued == [
            {
                "request": queued[0]["request"],
                "schedule": g.schedule_id,
                "end": "2026-11-27T09:50:00+00:00",
                "grants": 1,
            }
        ]
        done = [d for a, d in events if a == "grant.extended"]
        assert [d["end"] for d in done] == ["2026-11-27T09:50:00+00:00"]

        await later(eng, 6 * 60)  # 09:31: past the old end, nothing ends
        assert [g.status for g in await rows(eng)] == [GrantStatus.PROVISIONED]
        await later(eng, 20 * 60)  # past the new end
        assert await w.run_once() == 1
        assert await w.run_once() == 0
        assert hook.effects() == {
            (g.grant_id, "grant.activated"): 1,
            (g.grant_id, "grant.extended"): 1,
            (g.grant_id, "grant.revoked"): 1,
        }
        assert hook.repeats() == 0 and hook.bad_signatures == 0
        await close(w)
    async with eng.uow.read() as s:
        assert (await verify_chain(s)).ok


async def test_extending_twice_sends_each_new_end_once(eng):
    async with WebhookReceiver() as hook:
        await with_webhook(eng, hook.url, role="quick")
        w = worker(eng)
        await activate_quick(eng, w)
        await say(eng, BOB, "extend quick 10m")
        await say(eng, BOB, "extend quick 10m")  # before the worker ran: one call, last end
        assert await w.run_once() == 1
        eng.clock.advance(timedelta(minutes=1))
        await say(eng, BOB, "extend quick 5m")
        assert await w.run_once() == 1
        ends = [d.body["data"]["end"] for d in hook.deliveries if d.type == "grant.extended"]
        assert ends == ["2026-11-27T09:50:00Z", "2026-11-27T09:55:00Z"]
        assert len({d.webhook_id for d in hook.deliveries}) == 3
        await close(w)


async def test_an_extension_before_the_grant_was_tried_just_grants_the_new_end(eng):
    async with WebhookReceiver() as hook:
        await with_webhook(eng, hook.url, role="quick")
        await say(eng, BOB, "activate quick 30m checking")
        out = await say(eng, BOB, "extend quick 20m")
        assert out.ok, out.text
        extended = [p for who, _, p in await eng.outbox("activated") if who == BOB][-1]
        assert extended["details"] == ["webhook: provisioning…"]
        assert "grant.extending" not in [a for a, _ in await audited(eng)]
        w = worker(eng)
        assert await w.run_once() == 1
        assert await w.run_once() == 0
        (d,) = hook.deliveries
        assert (d.type, d.body["data"]["end"]) == ("grant.activated", NEW_END)
        await close(w)


async def test_an_extension_while_the_grant_call_is_out_follows_it(eng):
    async with WebhookReceiver(delay=0.5) as hook:
        await with_webhook(eng, hook.url, role="quick")
        await say(eng, BOB, "activate quick 30m checking")
        w = worker(eng)
        call = asyncio.create_task(w.run_once())
        while not hook.deliveries:
            await asyncio.sleep(0.01)
        await say(eng, BOB, "extend quick 20m")  # the grant with the old end is in flight
        (g,) = await rows(eng)
        assert (g.status, g.claimed_by) == (GrantStatus.PENDING_EXTENSION, "w1")
        # The grant lands with the old end; the row is handed back and its extension goes
        # out next, in the same round.
        assert await call == 2
        assert await w.run_once() == 0
        assert [(d.type, d.body["data"]["end"]) for d in hook.deliveries] == [
            ("grant.activated", "2026-11-27T09:30:00Z"),
            ("grant.extended", NEW_END),
        ]
        assert [g.status for g in await rows(eng)] == [GrantStatus.PROVISIONED]
        await close(w)


async def test_a_revoke_after_an_extension_wins_and_nothing_is_granted_again(eng):
    async with WebhookReceiver() as hook:
        await with_webhook(eng, hook.url, role="quick")
        w = worker(eng)
        await activate_quick(eng, w)
        eng.clock.advance(timedelta(minutes=6))
        await say(eng, BOB, "extend quick 20m")
        assert "deactivated" in (await say(eng, BOB, "deactivate quick")).text
        assert [g.status for g in await rows(eng)] == [GrantStatus.PENDING_REVOKE]
        assert await w.run_once() == 1
        assert await w.run_once() == 0
        assert [d.type for d in hook.deliveries] == ["grant.activated", "grant.revoked"]
        await close(w)


async def test_a_revoke_while_the_extend_call_is_out_goes_after_it(eng):
    async with WebhookReceiver() as hook:
        await with_webhook(eng, hook.url, role="quick")
        w = worker(eng)
        await activate_quick(eng, w)
        eng.clock.advance(timedelta(minutes=6))
        await say(eng, BOB, "extend quick 20m")
        hook.delay = 0.5
        call = asyncio.create_task(w.run_once())
        while len(hook.deliveries) < 2:
            await asyncio.sleep(0.01)
        assert "deactivated" in (await say(eng, BOB, "deactivate quick")).text
        other = worker(eng, "w2")
        assert await other.run_once() == 0  # the lease holds: the revoke waits for the call
        assert await call == 2  # the extension lands; its row is handed back, revoked next
        assert await w.run_once() == 0 and await other.run_once() == 0
        assert [d.type for d in hook.deliveries] == [
            "grant.activated",
            "grant.extended",
            "grant.revoked",
        ]
        assert [g.status for g in await rows(eng)] == [GrantStatus.REVOKED]
        status = [p["headline"] for who, _, p in await eng.outbox("grant_status") if who == BOB]
        assert status == ["Quick Role is active in webhook."]  # no "now lasts" for ended access
        await close(w)
        await close(other)


async def test_two_workers_extend_once(eng):
    async with WebhookReceiver(delay=0.2) as hook:
        await with_webhook(eng, hook.url, role="quick")
        w1, w2 = worker(eng, "w1"), worker(eng, "w2")
        await activate_quick(eng, w1)
        await say(eng, BOB, "extend quick 20m")
        done = await asyncio.gather(w1.run_once(), w2.run_once())
        assert sorted(done) == [0, 1]
        assert await w1.run_once() == 0 and await w2.run_once() == 0
        assert [d.type for d in hook.deliveries].count("grant.extended") == 1
        await close(w1)
        await close(w2)


async def test_a_refused_extension_fails_alerts_and_expiry_still_revokes(eng):
    async with WebhookReceiver() as hook:
        await with_webhook(eng, hook.url, role="quick")
        w = worker(eng)
        await activate_quick(eng, w)
        (g,) = await rows(eng)
        hook.reject.add(g.grant_id)
        await say(eng, BOB, "extend quick 20m")
        assert await w.run_once() == 0
        (g,) = await rows(eng)
        assert (g.status, g.phase, g.attempts) == (GrantStatus.FAILED, "extend", 1)
        alerts = {who: p for who, _, p in await eng.outbox("grant_failed")}
        assert set(alerts) == {BOB, ALICE}
        assert alerts[BOB]["headline"].startswith("Quick Role in webhook: failed: ")
        assert alerts[BOB]["details"] == [
            "moving the end of webhook " + hook.url + "; the admins are told."
        ]
        assert "Moving the end of Quick Role for bob@contoso.com" in alerts[ALICE]["headline"]
        assert "grant.extend_failed" in [a for a, _ in await audited(eng)]
        answer = await say(eng, ALICE, "grants failed")
        assert "Failed · bob@contoso.com · quick · webhook" in answer.text
        # The access is still there (with its old end): the end of the activation takes it back.
        hook.reject.clear()
        await later(eng, 50 * 60)
        assert [g.status for g in await rows(eng)] == [GrantStatus.PENDING_REVOKE]
        assert await w.run_once() == 1
        assert [d.type for d in hook.deliveries] == ["grant.activated", "grant.revoked"]
        await close(w)


async def test_an_approved_extension_and_an_admin_extension_move_the_grant(eng):
    async with WebhookReceiver() as hook:
        await with_webhook(eng, hook.url)  # global-admin: extensions need Carol's approval
        w = worker(eng)
        rid = (await say(eng, BOB, "activate global-admin 1h fix the tenant")).request.id
        await say(eng, CAROL, f"approve {rid} ok")
        assert await w.run_once() == 1
        ext = (await say(eng, BOB, "extend global-admin 1h still fixing")).request.id
        assert [g.status for g in await rows(eng)] == [GrantStatus.PROVISIONED]  # not yet
        await say(eng, CAROL, f"approve {ext} ok")
        assert await w.run_once() == 1
        assert hook.deliveries[-1].body["data"]["end"] == "2026-11-27T11:00:00Z"

        await with_webhook(eng, hook.url, role="helpdesk-admin")
        assert (await say(eng, ALICE, f"assign {CAROL} helpdesk-admin active 4h on call")).ok
        assert await w.run_once() == 1
        out = await say(eng, ALICE, f"extend-assignment {CAROL} helpdesk-admin active 2h")
        assert out.ok, out.text
        assigned = [p for who, _, p in await eng.outbox("assigned") if who == CAROL][-1]
        assert assigned["details"] == ["webhook: moving the end…"]
        assert await w.run_once() == 1
        last = hook.deliveries[-1]
        assert (last.type, last.body["data"]["end"]) == ("grant.extended", "2026-11-27T15:00:00Z")
        assert last.body["data"]["principal"]["email"] == CAROL
        await close(w)


async def test_a_worker_lost_mid_extension_leaves_it_to_the_next_with_the_same_id(eng):
    async with WebhookReceiver() as hook:
        await with_webhook(eng, hook.url, role="quick")
        w1, w2 = worker(eng, "w1"), worker(eng, "w2")
        await activate_quick(eng, w1)
        await say(eng, BOB, "extend quick 20m")
        hook.delay = 1
        lost = asyncio.create_task(w1.run_once())
        while len(hook.deliveries) < 2:
            await asyncio.sleep(0.01)
        lost.cancel()  # the worker is gone after the receiver acted, before it was told
        await asyncio.gather(lost, return_exceptions=True)
        hook.delay = 0
        assert await w2.run_once() == 0  # its lease still holds
        eng.clock.advance(w1.lease)
        assert await w2.run_once() == 1
        assert [g.status for g in await rows(eng)] == [GrantStatus.PROVISIONED]
        (g,) = await rows(eng)
        assert hook.effects()[(g.grant_id, "grant.extended")] == 1  # acted on once
        assert hook.repeats() == 1  # the resend carried the same webhook-id
        await close(w1)
        await close(w2)


async def test_a_grant_that_carried_an_end_since_moved_is_followed_by_an_extension(eng):
    """The window the extension's own UPDATE cannot see on PostgreSQL: a claim that read the
    old end just before the extension committed, of a row not yet marked as tried."""
    async with WebhookReceiver(delay=0.5) as hook:
        await with_webhook(eng, hook.url, role="quick")
        await say(eng, BOB, "activate quick 30m checking")
        w = worker(eng)
        call = asyncio.create_task(w.run_once())
        while not hook.deliveries:
            await asyncio.sleep(0.01)
        async with eng.uow.transaction() as s:  # the end moves; the row is not touched
            await s.execute(
                update(Schedule)
                .where(Schedule.kind == ScheduleKind.ACTIVE)
                .values(end_at=T0 + timedelta(minutes=50))
            )
        (g,) = await rows(eng)
        assert g.status == GrantStatus.PENDING_PROVISIONING
        assert await call == 2  # the grant, then the extension it was found to need
        assert [(d.type, d.body["data"]["end"]) for d in hook.deliveries] == [
            ("grant.activated", "2026-11-27T09:30:00Z"),
            ("grant.extended", NEW_END),
        ]
        assert [g.status for g in await rows(eng)] == [GrantStatus.PROVISIONED]
        await close(w)
