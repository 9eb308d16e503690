"""Two replicas on one PostgreSQL database (and on SQLite): every grant and every revoke is
sent once, by one of them, and both take part."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from handlers.clock import SystemClock
from handlers.policy import apply_policy
from storage.audit import verify_chain
from storage.db import make_engine
from storage.models import Grant
from storage.uow import UnitOfWork
from tests.webhookfake import WebhookReceiver

ROOT = Path(__file__).resolve().parents[2]
N = 24
LIVE = 5  # seconds each assignment lasts: all are granted well before they end


def policy(url: str, end: datetime) -> str:
    people = "\n".join(f"  - {{email: p{i}@contoso.com, name: P {i}}}" for i in range(N))
    active = "\n".join(
        f"  - {{principal: p{i}@contoso.com, role: db, type: active, "
        f"end: {end.isoformat().replace('+00:00', 'Z')}}}"
        for i in range(N)
    )
    return (
        f"principals:\n{people}\nroles:\n  - id: db\n    name: DB\n"
        f'    grant: [{{webhook: "{url}"}}]\nassignments:\n{active}\n'
    )


async def test_two_replicas_grant_and_revoke_each_once(db_url, tmp_path):
    async with WebhookReceiver(delay=0.02) as hook:
        engine = make_engine(db_url)
        uow = UnitOfWork(engine)
        outs = [tmp_path / f"r{i}.log" for i in range(2)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                str(ROOT / "tests/integration/grant_worker.py"),
                db_url,
                f"r{i}",
                str(out),
                env=env,
                cwd=str(ROOT),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            for i, out in enumerate(outs)
        ]
        pipes = [(p.stdin, p.stdout) for p in procs if p.stdin and p.stdout]
        ready = [await asyncio.wait_for(out.readline(), timeout=60) for _, out in pipes]
        assert ready == [b"ready\n"] * 2
        # The clock starts now that both replicas are up, not while they start.
        end = datetime.now(UTC) + timedelta(seconds=LIVE)
        await apply_policy(uow, SystemClock(), text=policy(hook.url, end))
        start_at = time.time() + 0.2
        until = start_at + LIVE + 30  # a bound: each replica stops once all are revoked
        for stdin, _ in pipes:
            stdin.write(f"{start_at} {until}\n".encode())
            await stdin.drain()
        codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), timeout=120)
        async with uow.read() as s:
            counts = dict(
                (await s.execute(select(Grant.status, func.count()).group_by(Grant.status))).all()
            )
            chain = await verify_chain(s)
        await engine.dispose()
    assert codes == [0, 0]
    calls = Counter(line for out in outs if out.exists() for line in out.read_text().split())
    assert {str(k): v for k, v in counts.items()} == {"Revoked": N}
    assert len(calls) == 2 * N and max(calls.values()) == 1  # no call made twice
    assert len(hook.deliveries) == 2 * N and hook.repeats() == 0
    assert set(hook.effects().values()) == {1}
    assert all(out.exists() and out.read_text() for out in outs)  # both took part
    assert chain.ok
