"""kill -9 of a serving pim-bot in the middle of a burst of grant webhooks: after a restart
every grant is delivered and later revoked, each event acted on once (one webhook id each;
a resend after the kill carries the same id, so the receiver acts once), and the audit chain
verifies. Prints the counts."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clihelp import Server, free_port
from sqlalchemy import func, select

from handlers.clock import SystemClock
from handlers.policy import apply_policy
from storage.audit import verify_chain
from storage.db import make_engine
from storage.models import AuditEvent, Grant
from storage.uow import UnitOfWork
from tests.webhookfake import SECRET, WebhookReceiver

N = 30
KILL_AFTER = N // 3  # deliveries seen before the kill
# How long each assignment lasts from the moment the burst starts: revokes come after the
# restart. LIVE covers the lease of 3 s and the throttled rest of the burst; on top comes the
# restart itself, as long as the first start-up took and half again (a loaded machine starts
# serve in 3 s or in 20).
LIVE = timedelta(seconds=15)
RESTART_FACTOR = 1.5


def policy(url: str, end: datetime | None) -> str:
    """The people and the role; with `end`, each person's active assignment ending then."""
    people = "\n".join(f"  - {{email: p{i}@contoso.com, name: P {i}}}" for i in range(N))
    active = "\n".join(
        f"  - {{principal: p{i}@contoso.com, role: db, type: active, "
        f"end: {end.isoformat().replace('+00:00', 'Z')}}}"
        for i in range(N)
        if end is not None
    )
    return f"""admins: [alice@contoso.com]
principals:
  - {{email: alice@contoso.com, name: Alice Admin}}
{people}
roles:
  - id: db
    name: Database Break Glass
    grant: [{{webhook: "{url}"}}]
assignments:{" []" if end is None else ""}
{active}
"""


async def statuses(url: str) -> tuple[dict[str, int], int, bool]:
    engine = make_engine(url)
    try:
        async with UnitOfWork(engine).read() as s:
            counts = dict(
                (await s.execute(select(Grant.status, func.count()).group_by(Grant.status))).all()
            )
            audited = (
                await s.scalar(
                    select(func.count())
                    .select_from(AuditEvent)
                    .where(AuditEvent.action.in_(["grant.provisioned", "grant.revoked"]))
                )
                or 0
            )
            ok = (await verify_chain(s)).ok
    finally:
        await engine.dispose()
    return {str(k): v for k, v in counts.items()}, audited, ok


async def wait_for(check, seconds: float) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.2)


@pytest.mark.slow
async def test_kill_9_mid_grant_burst_grants_and_revokes_each_once(
    start_serve, db_url: str, workdir: Path
):
    async with WebhookReceiver(per_second=8, delay=0.5) as hook:
        file = workdir / "grants.yaml"
        file.write_text(policy(hook.url, None), encoding="utf-8")
        env = {
            "PIM_POLICY": str(workdir / "grants.yaml"),
            "PIM_WEBHOOK_SECRET": SECRET,
            "PIM_GRANT_LEASE_SECONDS": "3",
            "PIM_SWEEP_SECONDS": "1",
        }
        port = free_port()
        started = time.monotonic()
        server: Server = start_serve(db_url, "--port", str(port), env=env, port=port)
        assert (await server.healthz())[0] == 200
        restart = timedelta(seconds=RESTART_FACTOR * (time.monotonic() - started))
        # The burst starts once the server is up, so its start-up does not eat into LIVE: the
        # same policy apply serve runs at start, done here; the restart applies the same file.
        end = datetime.now(UTC).replace(microsecond=0) + LIVE + restart
        file.write_text(policy(hook.url, end), encoding="utf-8")
        engine = make_engine(db_url)
        try:
            plan = await apply_policy(
                UnitOfWork(engine), SystemClock(), text=file.read_text(), source=str(file)
            )
        finally:
            await engine.dispose()
        assert sum(c.kind == "assignment" for c in plan.changes) == N, plan.render()
        await wait_for(lambda: _true(len(hook.deliveries) >= KILL_AFTER), 60)
        server.proc.kill()  # SIGKILL mid-burst: calls in flight, outcomes unrecorded
        server.proc.wait(timeout=10)
        at_kill = len(hook.deliveries)

        again = start_serve(db_url, "--port", str(port), env=env, port=port)
        assert (await again.healthz())[0] == 200

        async def all_revoked() -> bool:
            counts, _, _ = await statuses(db_url)
            return counts.get("Revoked", 0) == N

        await wait_for(all_revoked, (LIVE + restart).total_seconds() + 60)
        health = (await again.healthz())[1]
    counts, audited, chain_ok = await statuses(db_url)
    effects = hook.effects()
    print(
        f"\nkill -9 grant burst on {db_url.split(':')[0]}: {N} grants, {at_kill} delivered "
        f"before the kill, {hook.repeats()} resent with the same webhook id after it, "
        f"{hook.answers['429']} throttled; statuses {counts}"
    )
    assert counts == {"Revoked": N}
    assert len(effects) == 2 * N and set(effects.values()) == {1}  # each event acted on once
    assert {kind for _, kind in effects} == {"grant.activated", "grant.revoked"}
    assert hook.bad_signatures == 0
    assert audited == 2 * N and chain_ok
    assert health["grants_failed"] == 0


async def _true(value: bool) -> bool:
    return value
