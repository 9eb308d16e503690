"""Two replicas, one database, a digest every period: each admin gets each period's digest
exactly once, on every platform that reaches them, never twice, and the digest missed
before start-up goes out once (but not the older one still waiting from before the outage).

Both processes run the real runtime (Sweeper, APScheduler cron job, outbox worker) with a
cron trigger that fires every PERIOD seconds (Runtime.digest_cron; PIM_DIGEST_CRON's crontab
cannot fire more than once a minute) for two periods. Run as a script, this file is one such
process: `python test_digest_exactly_once.py URL NAME OUT LOG`; it says `ready` once its
runtime is prepared, then reads `START_AT STOP_AT` from stdin, so a slow start of the
interpreter never moves start-up across a firing. About 15 s, both databases at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[2]
if __name__ == "__main__":  # run as a worker process
    sys.path.insert(0, str(ROOT))

from bot.config import Settings  # noqa: E402
from bot.outbox import Delivery, Recipient  # noqa: E402
from bot.runtime import Runtime  # noqa: E402
from cards import views as v  # noqa: E402
from handlers.digest.send import DIGEST_TIMER, SENT, digest_key, insert_digest_timer  # noqa: E402
from storage.db import make_engine  # noqa: E402
from storage.models import AuditEvent, Principal, Timer  # noqa: E402
from storage.uow import UnitOfWork  # noqa: E402

CRON = "* * * * *"  # PIM_DIGEST_CRON, replaced in the workers by a trigger every PERIOD s
ZONE = "Europe/Berlin"
PERIOD = 5  # seconds between firings (divides 60: firings at fixed seconds of each minute)
ADMINS = {"alice@contoso.com": ("U0ALICE", "aad-alice"), "erin@contoso.com": ("U0ERIN", None)}
RUN_FOR = 2 * PERIOD  # seconds of cron firings; then SETTLE for the last to be delivered
SETTLE = PERIOD - 1.5  # and stop before the next firing


# --- the worker process -----------------------------------------------------------------------


class Recorder:
    """A transport that writes every delivery to this process's file."""

    def __init__(self, name: str, worker: str, out: str) -> None:
        self.name, self.worker, self.out = name, worker, out

    def reaches(self, recipient: Recipient | None, channel: dict[str, str] | None) -> bool:
        if recipient is None:
            return False
        return bool(recipient.slack_id if self.name == "slack" else recipient.teams_id)

    async def send(self, delivery: Delivery) -> dict[str, Any] | None:
        assert delivery.recipient is not None
        period = delivery.note.digest.period_end if delivery.note.digest else "-"
        with open(self.out, "a", encoding="utf-8") as f:
            f.write(
                f"{self.worker}\t{self.name}\t{delivery.recipient.email}\t{delivery.kind}"
                f"\t{period}\t{delivery.id}\n"
            )
        await asyncio.sleep(0.01)  # a network call: the database is free meanwhile
        return None

    async def update(self, delivery: Delivery) -> None:
        raise AssertionError("nothing to redraw")


async def worker(url: str, name: str, out: str, log: str) -> None:
    handler = logging.FileHandler(log, encoding="utf-8")
    handler.setFormatter(logging.Formatter(f"{name} %(asctime)s %(name)s: %(message)s"))
    for logger_name in ("bot.digest_schedule", "handlers.digest.send", "bot.scheduler"):
        logging.getLogger(logger_name).addHandler(handler)
        logging.getLogger(logger_name).setLevel(logging.INFO)
    settings = Settings.from_env(
        {
            "DATABASE_URL": url,
            "PIM_DIGEST_CRON": CRON,
            "PIM_TIMEZONE": ZONE,
            "PIM_SWEEP_SECONDS": "2",
        }
    )
    runtime = Runtime.build(settings)
    runtime.digest_cron = CronTrigger(second=f"*/{PERIOD}", timezone=ZoneInfo(ZONE))
    await runtime.prepare()
    print("ready", flush=True)
    start_at, stop_at = (float(word) for word in sys.stdin.readline().split())
    while time.time() < start_at:
        await asyncio.sleep(0.005)
    with open(out, "a", encoding="utf-8") as f:
        f.write(f"{name}\tstarted\n")
    runtime.start_background([Recorder("slack", name, out), Recorder("teams", name, out)])
    await asyncio.sleep(max(0.0, stop_at - time.time()))
    await runtime.close()
    with open(out, "a", encoding="utf-8") as f:
        f.write(f"{name}\tstopped\n")


# --- the test ---------------------------------------------------------------------------------


def period_start(at: datetime) -> datetime:
    """The firing at or before `at`."""
    return at.replace(second=at.second - at.second % PERIOD, microsecond=0)


async def build(url: str, *, now: datetime, stale: datetime) -> None:
    """Two admins (Alice on Slack and Teams, Erin on Slack) and Bob, there for ten minutes;
    and a digest scheduled before the outage that never went out."""
    engine = make_engine(url)
    async with UnitOfWork(engine).transaction() as s:
        for email, (slack_id, teams_id) in ADMINS.items():
            s.add(
                Principal(
                    email=email,
                    display_name=email.split("@")[0].title(),
                    admin=True,
                    slack_id=slack_id,
                    teams_id=teams_id,
                    created_at=now - timedelta(minutes=10),
                )
            )
        s.add(
            Principal(
                email="bob@contoso.com",
                display_name="Bob",
                slack_id="U0BOB",
                created_at=now - timedelta(minutes=10),
            )
        )
        await insert_digest_timer(s, period_end=stale)
    await engine.dispose()


async def database_state(url: str) -> tuple[dict[str, str], list[str]]:
    engine = make_engine(url)
    async with UnitOfWork(engine).transaction() as s:
        timers = dict(
            (
                await s.execute(select(Timer.key, Timer.status).where(Timer.kind == DIGEST_TIMER))
            ).all()
        )
        sent = list(
            (await s.scalars(select(AuditEvent.target).where(AuditEvent.action == SENT))).all()
        )
    await engine.dispose()
    return {str(k): str(status) for k, status in timers.items()}, sent


@pytest.mark.slow
@pytest.mark.postgres
async def test_two_replicas_send_each_periods_digest_exactly_once(sqlite_url, pg_url, tmp_path):
    # Both databases at once: the scenario is mostly waiting for cron firings.
    await asyncio.gather(
        two_replicas(sqlite_url, tmp_path / "sqlite"), two_replicas(pg_url, tmp_path / "postgresql")
    )


async def two_replicas(db_url: str, tmp_path: Path) -> None:
    tmp_path.mkdir()
    now = datetime.now(UTC)
    stale = period_start(now) - timedelta(minutes=5)  # scheduled long ago, never sent: dropped
    await build(db_url, now=now, stale=stale)

    names = ["w0", "w1"]
    outs = {n: tmp_path / f"{n}.out" for n in names}
    logs = {n: tmp_path / f"{n}.log" for n in names}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            db_url,
            n,
            str(outs[n]),
            str(logs[n]),
            env=env,
            cwd=str(ROOT),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for n in names
    ]
    pipes = [(p.stdin, p.stdout) for p in procs if p.stdin and p.stdout]
    ready = [await asyncio.wait_for(out.readline(), timeout=60) for _, out in pipes]
    assert ready == [b"ready\n"] * 2
    # Start both half a period after a firing, so which digest start-up catches up is clear.
    soon = time.time() + 0.5
    start_at = soon - soon % PERIOD + PERIOD / 2
    if start_at < soon:
        start_at += PERIOD
    start = datetime.fromtimestamp(start_at, UTC)
    missed = period_start(start)  # the most recent firing before start-up: caught up
    last = period_start(start + timedelta(seconds=RUN_FOR))
    stop_at = last.timestamp() + SETTLE
    for stdin, _ in pipes:
        stdin.write(f"{start_at} {stop_at}\n".encode())
        await stdin.drain()
    codes = await asyncio.wait_for(
        asyncio.gather(*(p.wait() for p in procs)), timeout=stop_at - time.time() + 60
    )
    assert codes == [0, 0]

    lines = {n: outs[n].read_text(encoding="utf-8").splitlines() for n in names}
    # both replicas ran the whole time
    for n in names:
        assert lines[n][0] == f"{n}\tstarted" and lines[n][-1] == f"{n}\tstopped", lines[n]
    deliveries = [tuple(line.split("\t")) for n in names for line in lines[n][1:-1]]
    digests = [
        (transport, to, period)
        for _, transport, to, kind, period, _ in deliveries
        if kind == v.DIGEST
    ]

    periods = [
        missed + timedelta(seconds=PERIOD * i)
        for i in range(int((last - missed).total_seconds()) // PERIOD + 1)
    ]
    assert periods[0] == missed and periods[-1] == last and 3 <= len(periods) <= 4
    expected = Counter(
        (transport, to, at.isoformat())
        for at in periods
        for to, (_, teams_id) in ADMINS.items()
        for transport in ("slack", "teams")
        if transport == "slack" or teams_id
    )
    # every admin, every period, on every platform that reaches them: exactly once
    assert Counter(digests) == expected
    assert max(Counter(digests).values()) == 1
    assert not [d for d in deliveries if d[2] == "bob@contoso.com"]
    # no delivery was made twice (outbox ids are unique across both processes)
    assert max(Counter(d[5] for d in deliveries).values()) == 1

    timers, sent = await database_state(db_url)
    assert timers == {digest_key(stale): "canceled", **{digest_key(at): "done" for at in periods}}
    assert sorted(sent) == sorted(digest_key(at) for at in periods)

    # both cron jobs fired every period; exactly one of them inserted each period's timer
    log_text = {n: logs[n].read_text(encoding="utf-8") for n in names}
    for at in periods[1:]:  # periods[0] came before start-up
        stamp = at.astimezone(ZoneInfo(ZONE)).isoformat()
        outcomes = [re.findall(rf"digest for {re.escape(stamp)}: (.*)", log_text[n]) for n in names]
        assert all(len(o) == 1 for o in outcomes), (stamp, outcomes)
        assert sorted(o[0] for o in outcomes) == [
            "already scheduled (another replica)",
            "scheduled",
        ], (stamp, outcomes)
    # and at start-up exactly one of them caught up the missed digest
    caught = [re.findall(r"digest catch-up for .*: (.*)", log_text[n]) for n in names]
    assert sorted(c[0] for c in caught) == ["nothing to do", "scheduled"], caught


if __name__ == "__main__":
    asyncio.run(
        worker(
            sys.argv[1],
            sys.argv[2],
            sys.argv[3],
            sys.argv[4],
        )
    )
