"""A delivery worker process with the real Slack transport, for the crash test: it delivers
the outbox to the Slack fake at BASE_URL until it is killed (or nothing is left)."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime

from slack_sdk.web.async_client import AsyncWebClient

from bot.outbox import OutboxWorker
from bot.slack.transport import SlackTransport
from handlers.clock import FixedClock
from storage.db import make_engine
from storage.uow import UnitOfWork


async def main(url: str, base_url: str, at: str) -> None:
    engine = make_engine(url)
    uow, clock = UnitOfWork(engine), FixedClock(datetime.fromisoformat(at))
    transport = SlackTransport(AsyncWebClient(token="xoxb-test", base_url=base_url), uow, clock)
    worker = OutboxWorker(uow, clock, [transport], worker="doomed", concurrency=1)
    await worker.run_once()
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
