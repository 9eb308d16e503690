"""A Slack message whose send was interrupted is not posted twice: the worker dies (kill -9)
after Slack accepted the post and before the row was marked sent, or the answer is lost on
the way back; the next attempt finds the post by its metadata and records it as sent, and
the card it left can still be redrawn."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select

from bot.outbox import Delivery
from bot.slack.pacing import Pacer
from bot.slack.transport import SlackTransport
from handlers.chat import command_table
from handlers.chat import run_text as _run_text
from handlers.clock import FixedClock
from handlers.digest.report import DigestOptions
from storage.db import make_engine
from storage.models import OutboxMessage, PostedMessage, Principal
from storage.uow import UnitOfWork
from tests.slackfake import Call, FakeSlackAPI
from tests.unit.conftest import T0, Engine, seed
from tests.unit.helpers import outbox_worker

ROOT = Path(__file__).resolve().parents[2]
BOB, CAROL = "bob@contoso.com", "carol@contoso.com"
SLACK_IDS = {
    "alice@contoso.com": "U0ALICE",
    BOB: "U0BOB",
    CAROL: "U0CAROL",
    "dave@contoso.com": "U0DAVE",
}


@pytest.fixture
async def eng(db_url: str) -> AsyncIterator[Engine]:
    engine = make_engine(db_url)
    uow, clock = UnitOfWork(engine), FixedClock(T0)
    await seed(uow, clock)
    async with uow.transaction() as s:
        for p in (await s.scalars(select(Principal))).all():
            p.slack_id = SLACK_IDS[p.email]
    try:
        yield Engine(uow=uow, clock=clock)
    finally:
        await engine.dispose()


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlackAPI]:
    async with FakeSlackAPI() as fake:
        yield fake


async def run_text(uow: UnitOfWork, clock: FixedClock, *, actor: str, text: str):
    return await _run_text(
        uow, clock, commands=command_table(digest=DigestOptions()), actor=actor, text=text
    )


def slack(eng: Engine, fake: FakeSlackAPI, clock: FixedClock | None = None) -> SlackTransport:
    client = AsyncWebClient(token="xoxb-test", base_url=fake.base_url)
    return SlackTransport(client, eng.uow, clock or eng.clock)


def outbox_ids(fake: FakeSlackAPI, user: str) -> list[int]:
    return [c.args["metadata"]["event_payload"]["outbox_id"] for c in fake.messages_to(user)]


async def ask(eng: Engine) -> str:
    reply = await run_text(
        eng.uow, eng.clock, actor=BOB, text="activate global-admin 1h rotate the break-glass keys"
    )
    return reply.request.id


async def statuses(eng: Engine, kind: str) -> list[str]:
    async with eng.uow.transaction() as s:
        return list(
            (
                await s.scalars(
                    select(OutboxMessage.status).where(
                        OutboxMessage.kind == kind, OutboxMessage.transport == "slack"
                    )
                )
            ).all()
        )


async def test_a_worker_killed_after_slack_took_the_card_does_not_post_it_twice(eng, fake, db_url):
    await outbox_worker(eng.uow, eng.clock, [slack(eng, fake)], worker="w0").run_once()
    rid = await ask(eng)
    fake.clear()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "tests/integration/slack_outbox_worker.py"),
        db_url,
        fake.base_url,
        eng.clock.now().isoformat(),
        cwd=str(ROOT),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )

    def kill(call: Call) -> None:  # Slack has the card; its answer never reaches the worker
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)

    fake.on_posted = kill
    assert await asyncio.wait_for(proc.wait(), timeout=60) == -signal.SIGKILL
    fake.on_posted = None
    (card,) = fake.messages_to("U0CAROL")  # the approver's card went out, then the crash
    assert await statuses(eng, "approval_needed") == ["sending"]

    # Another worker, once the dead one's lease is over.
    later = FixedClock(eng.clock.now() + timedelta(seconds=61))
    assert (
        await outbox_worker(eng.uow, later, [slack(eng, fake, later)], worker="w2").run_once() == 2
    )
    assert fake.messages_to("U0CAROL") == [card]  # looked, found it, did not post again
    (looked,) = fake.calls("conversations.history")
    assert looked.args["channel"] == "D0CAROL"
    assert len(fake.messages_to("U0BOB")) == 1  # Bob's "submitted": a first attempt, no look
    assert await statuses(eng, "approval_needed") == ["sent"]
    async with eng.uow.transaction() as s:
        refs = [
            r.ref
            for r in (
                await s.scalars(
                    select(PostedMessage).where(PostedMessage.kind == "approval_needed")
                )
            ).all()
        ]
    assert refs == [{"channel": "D0CAROL", "ts": card.response["ts"], "user": "U0CAROL"}]

    # The card found is the card redrawn after Carol decides.
    later.advance(timedelta(minutes=1))
    await run_text(eng.uow, later, actor=CAROL, text=f"approve {rid} fine")
    await outbox_worker(eng.uow, later, [slack(eng, fake, later)], worker="w2").run_once()
    assert fake.updates_of("D0CAROL", card.response["ts"])
    assert "Approved by Carol Chen" in str(fake.message("D0CAROL", card.response["ts"]))


class LosesAnswers(SlackTransport):
    """Slack takes the post, and the answer is lost on the way back (a timeout)."""

    async def send(self, delivery: Delivery) -> dict[str, Any] | None:
        await super().send(delivery)
        raise TimeoutError("no answer from Slack")


async def test_a_post_whose_answer_was_lost_is_not_posted_again(eng, fake):
    worker = outbox_worker(eng.uow, eng.clock, [slack(eng, fake)], worker="w1")
    await worker.run_once()
    fake.clear()
    await run_text(eng.uow, eng.clock, actor=BOB, text="activate quick 5m")
    lossy = outbox_worker(
        eng.uow,
        eng.clock,
        [
            LosesAnswers(
                AsyncWebClient(token="xoxb-test", base_url=fake.base_url), eng.uow, eng.clock
            )
        ],
        worker="w1",
    )
    assert await lossy.run_once() == 0
    assert len(fake.messages_to("U0BOB")) == 1
    assert await statuses(eng, "activated") == ["pending"]
    eng.clock.advance(timedelta(minutes=1))
    assert await worker.run_once() == 1
    assert await statuses(eng, "activated") == ["sent"]
    (message,) = fake.messages_to("U0BOB")
    assert "Quick Role is active" in message.args["text"]
    assert fake.calls("conversations.open") and fake.calls("conversations.history")


async def test_a_post_refused_with_429_is_simply_posted_again(eng, fake):
    """Slack's 429 proves nothing went out: the retry posts without looking first."""
    transport = slack(eng, fake)
    # The transport remembers Slack's pause itself; on the test's clock, so that moving the
    # clock past the Retry-After ends it, without waiting out real seconds.
    transport.pacer = Pacer(now=lambda: eng.clock.now().timestamp())
    worker = outbox_worker(eng.uow, eng.clock, [transport], worker="w1")
    await worker.run_once()
    fake.clear()
    await run_text(eng.uow, eng.clock, actor=BOB, text="activate quick 5m")
    fake.fail_next("chat.postMessage", status=429, retry_after=2)
    assert await worker.run_once() == 0
    eng.clock.advance(timedelta(seconds=1))
    assert await worker.run_once() == 0  # still paused: nothing posted
    eng.clock.advance(timedelta(seconds=1))
    assert await worker.run_once() == 1
    assert [c.status for c in fake.calls("chat.postMessage")] == [429, 200]
    assert fake.calls("conversations.history") == []
    assert len(outbox_ids(fake, "U0BOB")) == 1
