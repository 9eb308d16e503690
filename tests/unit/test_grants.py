"""Grants through the real engine, the real grant worker and the real webhook provider,
against a receiver on loopback that verifies every signature (tests/webhookfake).

Reads as: Bob asks, Carol approves, the receiver hears `grant.activated` once; access ends
(expiry, deactivation, removal), it hears `grant.revoked` once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from bot.grants_worker import GrantsWorker
from bot.providers.webhook import WebhookProvider
from handlers.digest.alerts import compute_alerts
from handlers.grants.admin import grant_lines
from handlers.timers import lifecycle_actions, run_due_timers
from storage.audit import verify_chain
from storage.models import Grant, Role
from tests.unit.helpers import ALICE, BOB, CAROL, say
from tests.webhookfake import SECRET, WebhookReceiver
from vocab.states import GrantStatus


async def with_webhook(eng, url: str, role: str = "global-admin") -> None:
    async with eng.uow.transaction() as s:
        await s.execute(
            update(Role).where(Role.id == role).values(grant_targets=[{"webhook": url}])
        )


def worker(eng, name: str = "w1", *, timeout: float = 5.0) -> GrantsWorker:
    return GrantsWorker(
        eng.uow,
        eng.clock,
        {"webhook": WebhookProvider(secret=SECRET, timeout=timeout)},
        worker=name,
    )


async def rows(eng) -> list[Grant]:
    async with eng.uow.read() as s:
        return list((await s.scalars(select(Grant).order_by(Grant.id))).all())


async def approve_bob(eng) -> str:
    rid = (await say(eng, BOB, "activate global-admin 1h fix the tenant")).request.id
    await say(eng, CAROL, f"approve {rid} ok")
    return rid


async def later(eng, seconds: float) -> None:
    eng.clock.advance(timedelta(seconds=seconds))
    await run_due_timers(eng.uow, eng.clock, worker="t", actions=lifecycle_actions())


async def close(w: GrantsWorker) -> None:
    for p in w.providers.values():
        await p.close()  # type: ignore[attr-defined]


async def test_approval_grants_once_and_expiry_revokes_once(eng):
    async with WebhookReceiver() as hook:
        await with_webhook(eng, hook.url)
        rid = await approve_bob(eng)
        activated = [p for who, kind, p in await eng.outbox("activated") if who == BOB]
        assert activated[-1]["details"] == ["webhook: provisioning…"]
        assert [g.status for g in await rows(eng)] == [GrantStatus.PENDING_PROVISIONING]

        w = worker(eng)
        assert await w.run_once() == 1
        assert await w.run_once() == 0  # nothing twice
        (grant,) = await rows(eng)
        assert grant.status == GrantStatus.PROVISIONED
        told = [p["headline"] for who, _, p in await eng.outbox("grant_status") if who == BOB]
        assert told == ["Global Administrator is active in webhook."]
        (d,) = hook.deliveries
        assert d.type == "grant.activated" and d.grant_id == grant.grant_id
        assert d.body["data"]["request_id"] == rid
        assert d.body["data"]["principal"]["email"] == BOB
        assert d.body["data"]["role"] == {"id": "global-admin", "name": "Global Administrator"}
        assert d.body["data"]["justification"] == "fix the tenant"

        await later(eng, 3600)  # the activation expires
        assert [g.status for g in await rows(eng)] == [GrantStatus.PENDING_REVOKE]
        assert await w.run_once() == 1
        assert await w.run_once() == 0
        assert [g.status for g in await rows(eng)] == [GrantStatus.REVOKED]
        assert hook.effects() == {
            (grant.grant_id, "grant.activated"): 1,
            (grant.grant_id, "grant.revoked"): 1,
        }
        assert hook.repeats() == 0 and hook.bad_signatures == 0
        await close(w)
    async with eng.uow.read() as s:
        assert (await verify_chain(s)).ok


async def test_deactivation_and_admin_removal_revoke_once(eng):
    async with WebhookReceiver() as hook:
        await with_webhook(eng, hook.url, role="helpdesk-admin")
        w = worker(eng)
        await say(eng, BOB, "activate helpdesk-admin 2h printers")
        await w.run_once()
        await later(eng, 600)
        assert "deactivated" in (await say(eng, BOB, "deactivate helpdesk-admin")).text
        await w.run_once()
        assigned = await say(eng, ALICE, f"assign {CAROL} helpdesk-admin active 4h on call")
        assert assigned.ok, assigned.text
        await w.run_once()
        assert "Removed" in (await say(eng, ALICE, f"remove {CAROL} helpdesk-admin active")).text
        await w.run_once()
        assert await w.run_once() == 0
        kinds = sorted(hook.effects().values())
        assert kinds == [1, 1, 1, 1]
        assert [g.status for g in await rows(eng)] == [GrantStatus.REVOKED] * 2
        await close(w)


async def test_throttled_then_failing_receiver_is_retried_with_backoff(eng):
    async with WebhookReceiver(script=["429", "500", "503"]) as hook:
        await with_webhook(eng, hook.url)
        await approve_bob(eng)
        w = worker(eng)
        assert await w.run_once() == 0  # 429, Retry-After: 1
        (g,) = await rows(eng)
        assert (g.status, g.attempts) == (GrantStatus.PENDING_PROVISIONING, 0)  # not a failure
        assert g.next_attempt_at == eng.clock.now() + timedelta(seconds=1)
        assert await w.run_once() == 0  # not due yet: nothing sent
        assert hook.answers["429"] == 1 and sum(hook.answers.values()) == 1
        eng.clock.advance(timedelta(seconds=1))
        assert await w.run_once() == 0  # 500: one attempt used, backoff 2 s
        (g,) = await rows(eng)
        assert g.attempts == 1 and "HTTP 500" in (g.last_error or "")
        assert g.next_attempt_at == eng.clock.now() + timedelta(seconds=2)
        eng.clock.advance(timedelta(seconds=2))
        assert await w.run_once() == 0  # 503 with Retry-After
        eng.clock.advance(timedelta(seconds=1))
        assert await w.run_once() == 1
        assert [g.status for g in await rows(eng)] == [GrantStatus.PROVISIONED]
        assert len(hook.deliveries) == 1
        await close(w)


async def test_a_hanging_receiver_times_out_and_the_grant_is_retried(eng):
    # The timeout must hold for the next call too, which answers at once: generous enough for
    # a loaded CI machine, and still well short of the hang.
    async with WebhookReceiver(script=["hang"], hang_seconds=4) as hook:
        await with_webhook(eng, hook.url)
        await approve_bob(eng)
        w = worker(eng, timeout=2.0)
        assert await w.run_once() == 0
        (g,) = await rows(eng)
        assert g.attempts == 1 and "unreachable" in (g.last_error or "")
        eng.clock.advance(timedelta(seconds=2))
        assert await w.run_once() == 1
        assert hook.effects() == {(g.grant_id, "grant.activated"): 1}
        await close(w)


async def test_permanent_refusal_fails_alerts_and_is_listed(eng):
    async with WebhookReceiver() as hook:
        await with_webhook(eng, hook.url)
        await approve_bob(eng)
        (g,) = await rows(eng)
        hook.reject.add(g.grant_id)
        w = worker(eng)
        assert await w.run_once() == 0
        (g,) = await rows(eng)
        assert g.status == GrantStatus.FAILED and g.attempts == 1
        alerts = {who: p["headline"] for who, _, p in await eng.outbox("grant_failed")}
        assert set(alerts) == {BOB, ALICE}  # the requester and the admins
        assert alerts[BOB].startswith("Global Administrator in webhook: failed: ")
        assert "HTTP 400" in alerts[BOB] and BOB in alerts[ALICE]
        assert await w.run_once() == 0 and hook.answers["400"] == 1  # not tried again
        (line,) = await grant_lines(eng.uow, failed_only=True)
        assert (line.person, line.status) == (BOB, "Failed")
        answer = await say(eng, ALICE, "grants failed")
        assert "Failed · bob@contoso.com · global-admin · webhook" in answer.text
        refused = await say(eng, BOB, "grants")
        assert not refused.ok and "Only admins" in refused.text
        alerts = await compute_alerts(eng.uow, now=eng.clock.now())
        (stuck,) = [a for a in alerts if a.code == "grants_failed"]
        assert stuck.severity == "high" and stuck.text.startswith("1 grant is stuck in Failed")
        await close(w)
    async with eng.uow.read() as s:
        assert (await verify_chain(s)).ok


async def test_a_revoke_waits_for_the_grant_call_in_flight(eng):
    # The call stays out (timeout) while the test expires the role and tries a revoke: a few
    # transactions, which take a while on a loaded CI machine; the hang outlasts the timeout.
    async with WebhookReceiver(script=["hang"], hang_seconds=6) as hook:
        await with_webhook(eng, hook.url, role="quick")
        await say(eng, BOB, "activate quick 10s")
        w = worker(eng, timeout=4.0)
        call = asyncio.create_task(w.run_once())
        while not hook.answers["hang"]:
            await asyncio.sleep(0.01)
        await later(eng, 10)  # expiry while the grant call is out
        (g,) = await rows(eng)
        assert g.status == GrantStatus.PENDING_REVOKE and g.claimed_by == "w1"
        other = worker(eng, "w2")
        assert await other.run_once() == 0  # the lease holds: no revoke before the grant ends
        # The grant call times out; the row is handed back and its revoke goes out next.
        assert await call == 1
        assert await other.run_once() == 0
        assert [g.status for g in await rows(eng)] == [GrantStatus.REVOKED]
        assert hook.effects() == {(g.grant_id, "grant.revoked"): 1}
        await close(w)
        await close(other)


async def test_ending_before_any_attempt_cancels_without_a_call(eng):
    async with WebhookReceiver() as hook:
        await with_webhook(eng, hook.url)
        await approve_bob(eng)
        await later(eng, 3600)
        assert [g.status for g in await rows(eng)] == [GrantStatus.CANCELED]
        assert await worker(eng).run_once() == 0
        assert hook.deliveries == []


@pytest.mark.parametrize("secret", ["", "abc", "whsec_", "whsec_!!!"])
def test_a_bad_webhook_secret_is_refused_at_start(secret):
    from bot.config import ConfigError, Settings

    if not secret:
        assert Settings.from_env({}).webhook_secret is None
        return
    with pytest.raises(ConfigError, match="PIM_WEBHOOK_SECRET must be whsec_"):
        Settings.from_env({"PIM_WEBHOOK_SECRET": secret})


async def test_a_retry_after_paces_the_other_calls_to_that_receiver(eng):
    async with WebhookReceiver(script=["429"]) as hook:
        await with_webhook(eng, hook.url)
        await approve_bob(eng)
        rid = (await say(eng, CAROL, "activate global-admin 1h rotate keys")).request.id
        await say(eng, ALICE, f"approve {rid} ok")
        w = GrantsWorker(
            eng.uow,
            eng.clock,
            {"webhook": WebhookProvider(secret=SECRET)},
            worker="w1",
            concurrency=1,
        )
        assert await w.run_once() == 0
        assert sum(hook.answers.values()) == 1  # the second call waited instead of bouncing
        assert {(g.status, g.attempts) for g in await rows(eng)} == {
            (GrantStatus.PENDING_PROVISIONING, 0)
        }
        eng.clock.advance(timedelta(seconds=1))
        assert await w.run_once() == 2
        assert hook.answers == {"429": 1, "200": 2}
        await close(w)
