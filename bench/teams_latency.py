"""Teams latency over loopback: message -> approver's card, Approve click -> requester's message.

    /tmp/probe/bin/python bench/teams_latency.py                 # 50 rounds, SQLite temp file
    python bench/teams_latency.py --rounds 200 --database-url postgresql://USER@HOST:PORT/DB

The setup is the e2e fixture's (tests/e2e/conftest.py): botbuilder's CloudAdapter (our
PimCloudAdapter, unauthenticated local mode) mounted on our aiohttp server (a real TCP site on
an ephemeral 127.0.0.1 port), the real engine and outbox worker (Runtime.start_background,
PIM_SWEEP_SECONDS 15, so only the poke path is measured), and the fake Bot Framework connector
of tests/teamsfake on another loopback port. N requesters (one per round, each with a
teams_id) and the approver Carol install the app first, so every conversation reference is
stored. Each round a fresh requester POSTs the personal-chat message
`activate global-admin 1h …`; (a) is the time from sending it to the connector receiving
Carol's approval card; then Carol's Approve click (an `adaptiveCard/action` invoke) is POSTed,
and (b) is the time from sending it to the connector receiving the requester's "approved"
message. Arrival times are the fake's own `time.monotonic()` stamps, so the polling interval
does not count.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, web
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.*

from bot.config import Settings  # noqa: E402
from bot.runtime import Runtime  # noqa: E402
from bot.server import make_app  # noqa: E402
from bot.teams.app import build_teams, mount  # noqa: E402
from cards import views as v  # noqa: E402
from handlers.policy import apply_policy  # noqa: E402
from storage.models import OutboxMessage  # noqa: E402
from tests.teamsfake import (  # noqa: E402
    Call,
    FakeConnector,
    card_of,
    installation_update,
    invoke_action,
    message,
    personal_conversation_id,
)

CAROL = "aad-carol"
ROLES = """
roles:
  - id: global-admin
    name: Global Administrator
    settings: {require_approval: true, approvers: [carol@contoso.com],
               approver_justification: false}
"""


def requester(i: int) -> str:
    return f"aad-req{i:03d}"


def policy(n: int) -> str:
    people = [
        "  - {email: alice@contoso.com, name: Alice Admin, teams_id: aad-alice}",
        f"  - {{email: carol@contoso.com, name: Carol Chen, teams_id: {CAROL}}}",
    ]
    people += [
        f"  - {{email: req{i:03d}@contoso.com, name: Requester {i}, teams_id: {requester(i)}}}"
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


async def post(http: ClientSession, url: str, activity: dict[str, Any]) -> dict[str, Any] | None:
    async with http.post(url, json=activity) as resp:
        if resp.status not in (200, 201):
            raise SystemExit(f"/api/messages answered {resp.status}: {await resp.text()}")
        return await resp.json() if resp.status == 200 else None


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


def stats(samples: list[float]) -> tuple[float, float, float]:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, max(0, round(0.95 * len(ms)) - 1))]
    return statistics.median(ms), p95, ms[-1]


def approve_data(card: Call) -> dict[str, Any]:
    def walk(node: object) -> dict[str, Any] | None:
        if isinstance(node, dict):
            if node.get("type") == "Action.Execute" and node.get("verb") == v.APPROVE:
                return dict(node.get("data") or {})
            nodes: list[Any] = list(node.values())
        elif isinstance(node, list):
            nodes = node
        else:
            return None
        for child in nodes:
            if (found := walk(child)) is not None:
                return found
        return None

    data = walk(card_of(card))
    if data is None:
        raise SystemExit("Carol's card has no Approve button")
    return data


async def run(url: str, rounds: int) -> None:
    async with FakeConnector() as fake:
        settings = Settings.from_env(
            {
                "DATABASE_URL": url,
                "PIM_TEAMS_ALLOW_UNAUTHENTICATED": "1",
                "PIM_SWEEP_SECONDS": "15",
            }
        )
        runtime = Runtime.build(settings)
        await runtime.prepare()
        await apply_policy(runtime.uow, runtime.clock, text=policy(rounds), source="bench.yaml")
        bundle = build_teams(settings, runtime.chat("teams"))
        web_app = make_app(runtime)
        mount(web_app, bundle)
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        endpoint = f"http://127.0.0.1:{runner.addresses[0][1]}/api/messages"
        runtime.start_background([bundle.transport])
        carol_conv = personal_conversation_id(CAROL)
        try:
            await drained(runtime)  # the start-up "you are eligible" messages: nobody installed
            card_lat, told_lat = [], []
            async with ClientSession() as http:
                for aad in [CAROL] + [requester(i) for i in range(rounds)]:
                    await post(
                        http, endpoint, installation_update(aad, service_url=fake.service_url)
                    )
                await fake.wait_for("post", count=rounds + 1, timeout=60)  # the greetings
                fake.clear()
                for i in range(rounds):
                    aad = requester(i)
                    conv = personal_conversation_id(aad)
                    cards_before = len(fake.sent_to(carol_conv))
                    body = message(
                        f"activate global-admin 1h bench round {i}",
                        user_aad=aad,
                        user_name=f"Requester {i}",
                        service_url=fake.service_url,
                    )
                    sent = time.monotonic()
                    await post(http, endpoint, body)
                    found = await fake.wait_for(
                        "post",
                        count=cards_before + 1,
                        where=lambda c: c.ok and c.conversation_id == carol_conv,
                    )
                    card = found[cards_before]
                    card_lat.append(card.at - sent)
                    data = approve_data(card)
                    click = invoke_action(
                        v.APPROVE,
                        data,
                        user_aad=CAROL,
                        user_name="Carol",
                        service_url=fake.service_url,
                        reply_to_id=card.activity_id or "",
                    )
                    sent = time.monotonic()
                    answer = await post(http, endpoint, click)
                    if not answer or "Approved by Carol Chen" not in str(answer):
                        raise SystemExit(f"the click was not answered with the card: {answer}")
                    (told,) = await fake.wait_for(
                        "post",
                        where=lambda c, cv=conv, r=data["request"]: (
                            c.ok
                            and c.conversation_id == cv
                            and f"approved your request {r}" in str(c.body)
                        ),
                    )
                    told_lat.append(told.at - sent)
                    # let this round's redraws (Carol's card, the submitted card) and "active"
                    # message go out before the next round
                    await fake.wait_for("update", count=2 * (i + 1))
                    await fake.wait_for(
                        "post",
                        where=lambda c, cv=conv: (
                            c.ok and c.conversation_id == cv and "is active until" in str(c.body)
                        ),
                    )
            await drained(runtime)
        finally:
            await runner.cleanup()
            await runtime.close()
    print(f"Teams latency over loopback, {rounds} rounds, {runtime.uow.dialect}\n")
    print("| measure | p50 ms | p95 ms | max ms |")
    print("|---|---:|---:|---:|")
    for name, samples in (
        ("(a) `activate` message sent → approver's card received", card_lat),
        ("(b) Approve invoke sent → requester's approved message received", told_lat),
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
    # The start-up "no Teams conversation yet" and "local mode" warnings are expected here.
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        asyncio.run(run(url, args.rounds))


if __name__ == "__main__":
    main()
