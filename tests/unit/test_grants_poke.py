"""Every command pokes the grant worker. A poke after a command that queued nothing (`roles`)
must not start a grant round: a round claims in a write transaction, on SQLite the one write
lock every command's commit waits for. After a command that queued work it does, also when
that command committed on a chat transport's own engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.grants_worker import GrantsWorker
from bot.providers.webhook import WebhookProvider
from storage.uow import UnitOfWork, note_queued
from tests.unit.helpers import BOB, CAROL, say
from tests.webhookfake import SECRET


class Counted(GrantsWorker):
    rounds = 0

    async def run_once(self) -> int:
        self.rounds += 1
        return await super().run_once()

    async def rounds_after_poke(self) -> int:
        before = self.rounds
        self.poke()
        await asyncio.sleep(0.3)
        return self.rounds - before


@pytest.fixture
async def worker(eng) -> AsyncIterator[Counted]:  # type: ignore[no-untyped-def]
    provider = WebhookProvider(secret=SECRET)
    w = Counted(eng.uow, eng.clock, {"webhook": provider}, worker="poked")
    w.start(poll_seconds=3600.0)
    await asyncio.sleep(0.3)  # the first round, at start
    try:
        yield w
    finally:
        await w.stop()
        await provider.close()


async def test_a_poke_after_a_read_starts_no_grant_round(eng, worker: Counted) -> None:
    await say(eng, BOB, "roles")
    assert await worker.rounds_after_poke() == 0
    rid = (await say(eng, BOB, "activate global-admin 1h fix the tenant")).request.id
    await say(eng, CAROL, f"approve {rid} ok")  # queues timers and messages
    assert await worker.rounds_after_poke() == 1
    assert await worker.rounds_after_poke() == 0


async def test_work_queued_on_a_chat_engine_wakes_the_worker(eng, worker: Counted) -> None:
    chat = UnitOfWork(eng.uow.engine, queued_with=eng.uow)
    async with chat.transaction() as s:
        note_queued(s)
    assert await worker.rounds_after_poke() == 1
