"""Slack latency over loopback: slash command -> approver's card, click -> requester's message.

    /tmp/probe/bin/python bench/slack_latency.py                 # 50 rounds, SQLite temp file
    python bench/slack_latency.py --rounds 200 --database-url postgresql://USER@HOST:PORT/DB

The setup is the e2e fixture's (tests/e2e/conftest.py): the real Bolt app mounted on our
aiohttp server (a real TCP site on an ephemeral 127.0.0.1 port), the real engine and outbox
worker (Runtime.start_background, PIM_SWEEP_SECONDS 15, so only the poke path is measured),
and the fake Slack Web API of tests/slackfake on another loopback port. Each round a fresh
requester (one of N eligible principals) sends a signed `/pim activate global-admin 1h …`;
(a) is the time from sending it to the fake receiving the approver's card (chat.postMessage to
Carol); then Carol's signed Approve click is sent, and (b) is the time from sending it to the
fake receiving the requester's "approved" DM. Arrival times are the fake's own
`time.monotonic()` stamps, so the polling interval does not count.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import ClientSession, web
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.*

from bot.config import Settings  # noqa: E402
from bot.runtime import Runtime  # noqa: E402
from bot.server import make_app  # noqa: E402
from bot.slack.app import build_slack, mount  # noqa: E402
from cards import views as v  # noqa: E402
from handlers.policy import apply_policy  # noqa: E402
from storage.models import OutboxMessage  # noqa: E402
from tests.slackfake import Call, FakeSlackAPI, block_action, sign, slash_command  # noqa: E402

SECRET = "bench-signing-secret"
ROLES = """
roles:
  - id: global-admin
    name: Global Administrator
    settings: {require_approval: true, approvers: [carol@contoso.com, erin@contoso.com],
               approver_justification: false, approval_channel: {slack: C0APPROVALS}}
"""


def policy(n: int) -> str:
    people = [
        "  - {email: alice@contoso.com, name: Alice Admin, slack_id: U0ALICE}",
        "  - {email: carol@contoso.com, name: Carol Chen, slack_id: U0CAROL}",
        "  - {email: erin@contoso.com, name: Erin Ersatz, slack_id: U0ERIN}",
    ]
    people += [
        f"  - {{email: req{i:03d}@contoso.com, name: Requester {i}, slack_id: U0REQ{i:03d}}}"
        for i in range(n)
    ]
    assignments = [
        f"  - {{principal: req{i:03d}@contoso.com, role: global-admin, type: eligible}}"
        for i in range(n)
    ]
    return (
        "admins: [alice@contoso.com]\nprincipals:\n"
        + "\n".join(people)
        + ROLES
        + "assignments:\n"
        + "\n".join(assignments)
        + "\n"
    )


async def post(http: ClientSession, url: str, body: bytes) -> None:
    async with http.post(url, data=body, headers=sign(body, SECRET)) as resp:
        if resp.status != 200:
            raise SystemExit(f"/slack/events answered {resp.status}: {await resp.text()}")


async def drained(runtime: Runtime, within: float = 60.0) -> None:
    """Wait until the outbox has nothing left to send (the sweeper's shutdown cancels a sweep
    in progress, so stop only once it is idle)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with runtime.uow.transaction() as s:
            left = await s.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status.in_(["pending", "sending"]))
            )
        if not left:
            break
        await asyncio.sleep(0.05)
    else:
        raise SystemExit(f"the outbox still has {left} messages after {within}s")
    # Pokes queue sweeps behind the sweeper's lock; let them all run out (0.5s idle).
    assert runtime.sweeper is not None
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 0.5 and time.monotonic() < deadline:
        if runtime.sweeper._lock.locked():
            idle_since = time.monotonic()
        await asyncio.sleep(0.02)


def approved_dm(user: str, request_id: str) -> Callable[[Call], bool]:
    return lambda c: (
        c.ok
        and c.args["channel"] == user
        and f"approved your request {request_id}" in c.args.get("text", "")
    )


def stats(samples: list[float]) -> tuple[float, float, float]:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, max(0, round(0.95 * len(ms)) - 1))]
    return statistics.median(ms), p95, ms[-1]


async def run(url: str, rounds: int) -> None:
    async with FakeSlackAPI() as fake:
        settings = Settings.from_env(
            {
                "DATABASE_URL": url,
                "SLACK_BOT_TOKEN": "xoxb-bench",
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_API_URL": fake.base_url,
                "PIM_SWEEP_SECONDS": "15",
            }
        )
        runtime = Runtime.build(settings)
        await runtime.prepare()
        await apply_policy(runtime.uow, runtime.clock, text=policy(rounds), source="bench.yaml")
        bundle = build_slack(settings, runtime.chat())
        web_app = make_app(runtime)
        mount(web_app, bundle.app)
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        events = f"http://127.0.0.1:{port}/slack/events"
        runtime.start_background([bundle.transport])
        try:
            await drained(runtime)  # the start-up "you are eligible" DMs
            fake.clear()
            card_lat, told_lat = [], []
            async with ClientSession() as http:
                for i in range(rounds):
                    user = f"U0REQ{i:03d}"
                    cards_before = len(fake.messages_to("U0CAROL"))
                    body = slash_command(
                        f"activate global-admin 1h bench round {i}",
                        user_id=user,
                        response_url=fake.response_url(f"r{i}"),
                    )
                    sent = time.monotonic()
                    await post(http, events, body)
                    found = await fake.wait_for(
                        "chat.postMessage",
                        count=cards_before + 1,
                        where=lambda c: c.ok and c.args["channel"] == "U0CAROL",
                    )
                    card = found[cards_before]
                    card_lat.append(card.at - sent)
                    request_id = next(
                        e["value"]
                        for b in card.args["blocks"]
                        if b["type"] == "actions"
                        for e in b["elements"]
                        if e["action_id"] == v.APPROVE
                    )
                    click = block_action(
                        v.APPROVE,
                        request_id,
                        user_id="U0CAROL",
                        response_url=fake.response_url(f"c{i}"),
                        message=card.response.get("message"),
                        channel_id=card.response.get("channel"),
                    )
                    sent = time.monotonic()
                    await post(http, events, click)
                    (told,) = await fake.wait_for(
                        "chat.postMessage", where=approved_dm(user, request_id)
                    )
                    told_lat.append(told.at - sent)
                    # let this round's redraws and "active" DMs go out before the next one
                    await fake.wait_for("chat.update", count=4 * (i + 1))
            await drained(runtime)
        finally:
            await runner.cleanup()
            await runtime.close()
    print(f"Slack latency over loopback, {rounds} rounds, {runtime.uow.dialect}\n")
    print("| measure | p50 ms | p95 ms | max ms |")
    print("|---|---:|---:|---:|")
    for name, samples in (
        ("(a) `/pim activate` sent → approver's card received", card_lat),
        ("(b) Approve click sent → requester's approved DM received", told_lat),
    ):
        p50, p95, worst = stats(samples)
        print(f"| {name} | {p50:.1f} | {p95:.1f} | {worst:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", "-n", type=int, default=50)
    parser.add_argument("--database-url", help="default: a SQLite file in a temp dir")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        asyncio.run(run(url, args.rounds))


if __name__ == "__main__":
    main()
