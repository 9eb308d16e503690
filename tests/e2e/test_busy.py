"""A database that cannot commit in time: the person is told "nothing was changed, try again"
at once, never an empty answer followed by silence, and nothing is recorded."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import func, select, text

from bot.runtime import Runtime
from storage.models import AuditEvent, ScheduleRequest
from tests.e2e.conftest import SlackBot, drained
from tests.e2e.teams_harness import TeamsBot

BUSY = "Nothing was changed; pim-bot is busy, try again in a moment."


@asynccontextmanager
async def locked(runtime: Runtime) -> AsyncIterator[None]:
    """Another writer holds the database: SQLite's write lock, or PostgreSQL's table locks."""
    async with runtime.uow.transaction() as s:
        if runtime.uow.dialect == "sqlite":
            await s.execute(text("UPDATE principals SET email = email"))  # BEGIN IMMEDIATE: held
        else:
            await s.execute(
                text(
                    "LOCK TABLE principals, schedule_requests, conversation_refs "
                    "IN ACCESS EXCLUSIVE MODE"
                )
            )
        yield


async def requests_and_events(runtime: Runtime) -> tuple[int, int]:
    async with runtime.uow.transaction() as s:
        return (
            await s.scalar(select(func.count()).select_from(ScheduleRequest)) or 0,
            await s.scalar(select(func.count()).select_from(AuditEvent)) or 0,
        )


async def test_slack_answers_busy_in_the_ack_when_the_database_is_locked(slack: SlackBot):
    await drained(slack.runtime)
    before = await requests_and_events(slack.runtime)
    async with locked(slack.runtime):
        started = time.monotonic()
        resp = await slack.command("U0BOB", "activate quick 1m", token="busy")
        took = time.monotonic() - started
        assert resp.status == 200
        (answer,) = await slack.replies("busy")
    assert answer["response_type"] == "ephemeral"
    assert answer["text"].endswith(BUSY), answer["text"]
    print(f"busy answer after {took:.2f}s")
    assert await requests_and_events(slack.runtime) == before
    # Once the lock is gone the same command goes through.
    resp = await slack.command("U0BOB", "activate quick 1m", token="again")
    (answer,) = await slack.replies("again")
    assert answer["text"].startswith("Quick Role is active now."), answer


async def test_teams_answers_busy_within_the_turn_when_the_database_is_locked(teams: TeamsBot):
    await teams.install("bob")
    await drained(teams.runtime)
    before = await requests_and_events(teams.runtime)
    async with locked(teams.runtime):
        teams.connector.clear()
        resp = await teams.say("bob", "activate quick 1m")
        assert resp.status in (200, 201)
        (answer,) = await teams.connector.wait_for("reply")
        assert answer.body["text"] == BUSY, answer.body
    assert await requests_and_events(teams.runtime) == before
