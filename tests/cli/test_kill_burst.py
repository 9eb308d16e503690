"""kill -9 in the middle of a burst of signed `/pim activate` commands: every command whose
answer said it was done is in the database after a restart; every other one is either absent
or complete (its request row together with its audit event). Prints the counts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from clihelp import Server, free_port
from sqlalchemy import select

from storage.db import make_engine
from storage.models import AuditEvent, Principal, ScheduleRequest
from storage.uow import UnitOfWork
from tests.slackfake import FakeSlackAPI, sign, slash_command

N = 60
KILL_AFTER = N // 3  # answers seen before the kill
CONCURRENCY = 12  # requests in flight at once
SECRET = "burst-signing-secret"
DONE = ("is active now", "is waiting for approval")
SLOW = "slow to answer"  # an overloaded machine: the answer promises nothing either way


def policy() -> str:
    people = "\n".join(
        f"  - {{email: p{i}@contoso.com, name: P {i}, slack_id: UP{i:03d}}}" for i in range(N)
    )
    grants = "\n".join(
        f"  - {{principal: p{i}@contoso.com, role: {'gated' if i % 2 else 'quick'}, "
        "type: eligible}"
        for i in range(N)
    )
    return f"""admins: [alice@contoso.com]
principals:
  - {{email: alice@contoso.com, name: Alice Admin, slack_id: UALICE}}
{people}
roles:
  - id: quick
    name: Quick Role
    settings: {{require_justification: false}}
  - id: gated
    name: Gated Role
    settings: {{require_justification: false, require_approval: true}}
assignments:
{grants}
"""


def command_for(i: int) -> bytes:
    role = "gated" if i % 2 else "quick"
    return slash_command(f"activate {role} 1h", user_id=f"UP{i:03d}")


async def send(http: aiohttp.ClientSession, port: int, i: int) -> str | None:
    """The ack body's text, or None when no answer came (connection lost)."""
    body = command_for(i)
    try:
        async with http.post(
            f"http://127.0.0.1:{port}/slack/events", data=body, headers=sign(body, SECRET)
        ) as resp:
            if resp.status != 200:
                return None
            text = await resp.text()
            return str((await resp.json())["text"]) if text.startswith("{") else ""
    except (TimeoutError, aiohttp.ClientError):
        return None


async def burst(server: Server) -> dict[int, str | None]:
    answers: dict[int, str | None] = {}
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        timeout=timeout, connector=aiohttp.TCPConnector(limit=CONCURRENCY)
    ) as http:

        async def one(i: int) -> None:
            answers[i] = await send(http, server.port, i)

        tasks = [asyncio.create_task(one(i)) for i in range(N)]
        while sum(a is not None for a in answers.values()) < KILL_AFTER and not all(
            t.done() for t in tasks
        ):
            await asyncio.sleep(0.005)
        server.proc.kill()  # SIGKILL: no clean-up, no flush, mid-burst
        server.proc.wait(timeout=10)
        await asyncio.gather(*tasks)
    return answers


async def stored(url: str) -> tuple[dict[str, str], set[str]]:
    """Each person's request status, and the requests that have their audit event."""
    engine = make_engine(url)
    try:
        async with UnitOfWork(engine).transaction() as s:
            rows = (
                await s.execute(
                    select(Principal.email, ScheduleRequest.status, ScheduleRequest.short_id)
                    .join(Principal, Principal.id == ScheduleRequest.principal_id)
                    .where(ScheduleRequest.action == "selfActivate")
                )
            ).all()
            details = (
                await s.scalars(
                    select(AuditEvent.details).where(AuditEvent.action == "request.created")
                )
            ).all()
    finally:
        await engine.dispose()
    audited = {str(d.get("request")) for d in details if isinstance(d, dict)}
    by_person = {email: status for email, status, _ in rows}
    return by_person, {short for _, _, short in rows if short in audited}


@pytest.mark.slow
async def test_kill_9_mid_burst_loses_no_answered_command(start_serve, db_url: str, workdir: Path):
    (workdir / "burst.yaml").write_text(policy(), encoding="utf-8")
    async with FakeSlackAPI() as fake:
        env = {
            "SLACK_BOT_TOKEN": "xoxb-burst",
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": fake.base_url,
            "PIM_POLICY": str(workdir / "burst.yaml"),
        }
        port = free_port()
        server = start_serve(db_url, "--port", str(port), env=env, port=port)
        assert (await server.healthz())[0] == 200
        answers = await burst(server)

        # Restart: start-up work runs; nothing is redone.
        again = start_serve(db_url, "--port", str(port), env=env, port=port)
        assert (await again.healthz())[0] == 200
        by_person, audited = await stored(db_url)

    answered_done = {i for i, a in answers.items() if a and any(d in a for d in DONE)}
    unanswered = {i for i, a in answers.items() if a is None}
    undecided = unanswered | {i for i, a in answers.items() if a is not None and SLOW in a}
    in_db = {i for i in range(N) if f"p{i}@contoso.com" in by_person}
    lost = answered_done - in_db
    print(
        f"\nkill -9 burst on {db_url.split(':')[0]}: sent {N}, answered "
        f"{N - len(unanswered)} (done {len(answered_done)}, busy or refused "
        f"{N - len(undecided) - len(answered_done)}, slow {len(undecided - unanswered)}), "
        f"unanswered {len(unanswered)}; in db {len(in_db)} (of them unanswered or slow "
        f"{len(in_db & undecided)}); lost {len(lost)}"
    )
    assert answered_done, answers  # the kill came mid-burst, after some answers
    assert not lost, {i: answers[i] for i in lost}
    # An answer that said "nothing was changed" (or refused) is true: no row for it.
    assert in_db - answered_done <= undecided, {i: answers[i] for i in in_db - answered_done}
    # Whatever is in the database is whole: each request with the audit event of its creation.
    assert len(audited) == len(by_person)
    assert set(by_person.values()) <= {"Provisioned", "PendingApproval"}
