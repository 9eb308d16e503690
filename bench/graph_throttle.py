"""Entra role grants and revokes against a throttled Graph: how close the provider gets to the
throttle's floor when it honours Retry-After.

    .venv/bin/python bench/graph_throttle.py                    # 200 people, 20 requests/s
    .venv/bin/python bench/graph_throttle.py --people 1000 --rate 20 --concurrency 16

The real EntraRoleProvider signs in with azure-identity (client secret) and calls the fake
Graph of tests/msfake over HTTPS with a test CA, all on 127.0.0.1. The fake allows --rate
requests a second (a token bucket of one second's burst) and answers 429 with Retry-After
beyond it. --concurrency workers each take the next person, and on a retryable ProviderError
wait its retry_after (or 1 s) and try again, as the grant worker does. Grants run first, then
revokes. The table gives, per phase, the time taken beside the floor (people / rate), the 429s
met, and how many people hold the role at the end of the phase (all after grants, none after
revokes; a person granted or revoked twice would show as an extra 201 in "accepted").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.*

from bot.providers.entra_role import EntraRoleProvider  # noqa: E402
from bot.providers.graph import MicrosoftApis  # noqa: E402
from handlers.grants.provider import GrantJob, Person, ProviderError, Target  # noqa: E402
from tests.msfake import MicrosoftFakes  # noqa: E402

ROLE = "62e90394-69f5-4237-9190-012177145e10"


def jobs(people: int) -> list[GrantJob]:
    start = datetime.now(UTC)
    return [
        GrantJob(
            grant_id=f"G-{i}",
            action="grant",
            target=Target(kind="entra_role", ref=ROLE),
            person=Person(
                email=f"p{i}@contoso.com",
                name=f"P{i}",
                teams_id=f"00000000-0000-4000-8000-{i:012d}",
            ),
            role_id="global-admin",
            role_name="Global Administrator",
            request_id=f"R-{i}",
            start=start,
            end=start + timedelta(hours=1),
            justification="bench",
        )
        for i in range(people)
    ]


async def drive(todo: list[GrantJob], provider: EntraRoleProvider, concurrency: int) -> None:
    queue: asyncio.Queue[GrantJob] = asyncio.Queue()
    for job in todo:
        queue.put_nowait(job)

    async def worker() -> None:
        while not queue.empty():
            job = queue.get_nowait()
            while True:
                try:
                    await (provider.grant(job) if job.action == "grant" else provider.revoke(job))
                    break
                except ProviderError as err:
                    if err.permanent:
                        raise
                    await asyncio.sleep(err.retry_after or 1.0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def main(args: argparse.Namespace) -> None:
    async with MicrosoftFakes() as ms:
        os.environ.update(ms.env())
        ms.graph.limit(args.rate)
        grants = jobs(args.people)
        rows = []
        async with MicrosoftApis.from_env() as apis:
            provider = EntraRoleProvider(apis.graph)
            for phase, todo in (
                ("grant", grants),
                ("revoke", [replace(j, action="revoke") for j in grants]),
            ):
                seen = len(ms.graph.calls)
                started = time.monotonic()
                await drive(todo, provider, args.concurrency)
                took = time.monotonic() - started
                calls = ms.graph.calls[seen:]
                rows.append(
                    (
                        phase,
                        args.people,
                        took,
                        args.people / args.rate,
                        sum(c.status == 429 for c in calls),
                        sum(c.status == 201 for c in calls),
                        len(ms.graph.role_holders(ROLE)),
                    )
                )
    print(
        f"{'phase':<7} {'people':>6} {'seconds':>8} {'floor s':>8} {'429s':>6} "
        f"{'accepted':>8} {'holders':>7}"
    )
    for phase, people, took, floor, limited, accepted, holders in rows:
        print(
            f"{phase:<7} {people:>6} {took:>8.1f} {floor:>8.1f} {limited:>6} "
            f"{accepted:>8} {holders:>7}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=8)
    asyncio.run(main(parser.parse_args()))
