"""What the replay guard costs: signed `/pim help` answered over loopback, with the seen-request
insert (as shipped) and without it (the middleware taken out), A B A B.

    python bench/replay_guard.py                                  # SQLite temp file
    python bench/replay_guard.py --database-url postgresql://USER@HOST:PORT/DB -n 300 -c 10

The app is the e2e fixture's: real Bolt dispatch of signed requests on our aiohttp server (a TCP
site on an ephemeral 127.0.0.1 port), the real engine, the fake Slack Web API on another port.
Each request is a fresh signature, so every one costs the guard one INSERT … ON CONFLICT.
Latency is from sending the request to its HTTP answer (the ack), `-c` clients at once.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import ClientSession, web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import Settings  # noqa: E402
from bot.runtime import Runtime  # noqa: E402
from bot.server import make_app  # noqa: E402
from bot.slack.app import build_slack, mount  # noqa: E402
from handlers.policy import apply_policy  # noqa: E402
from tests.slackfake import FakeSlackAPI, sign, slash_command  # noqa: E402

SECRET = "bench-secret"
triggers = itertools.count()
POLICY = """
principals:
  - {email: bob@contoso.com, name: Bob Builder, slack_id: U0BOB}
roles: []
"""


async def serve(url: str, fake: FakeSlackAPI, *, guard: bool) -> tuple[Runtime, web.AppRunner, str]:
    settings = Settings.from_env(
        {
            "DATABASE_URL": url,
            "SLACK_BOT_TOKEN": "xoxb-bench",
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": fake.base_url,
        }
    )
    runtime = Runtime.build(settings)
    await runtime.prepare()
    await apply_policy(runtime.uow, runtime.clock, text=POLICY, source="bench")
    bundle = build_slack(settings, runtime.chat())
    if not guard:  # bench only: take the replay middleware out of Bolt's list
        bundle.app._async_middleware_list[:] = [
            m for m in bundle.app._async_middleware_list if "once" not in m.name
        ]
    web_app = make_app(runtime)
    mount(web_app, bundle.app)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runtime, runner, f"http://127.0.0.1:{port}/slack/events"


async def run(url: str, fake: FakeSlackAPI, *, guard: bool, n: int, clients: int) -> list[float]:
    runtime, runner, endpoint = await serve(url, fake, guard=guard)
    answers = fake.response_url("bench")
    latencies: list[float] = []
    try:
        async with ClientSession() as http:

            async def client(count: int) -> None:
                for _ in range(count):
                    # Slack gives every command its own trigger_id, so no two bodies match.
                    body = slash_command(
                        "help",
                        user_id="U0BOB",
                        response_url=answers,
                        trigger_id=f"{next(triggers)}.{time.time_ns()}",
                    )
                    started = time.perf_counter()
                    async with http.post(endpoint, data=body, headers=sign(body, SECRET)) as r:
                        await r.read()
                        assert r.status == 200, r.status
                    latencies.append(time.perf_counter() - started)

            await client(5)  # warm up: auth.test, connections
            latencies.clear()
            await asyncio.gather(*(client(n // clients) for _ in range(clients)))
    finally:
        await runner.cleanup()
        await runtime.close()
    return latencies


def row(name: str, samples: list[float], wall: float) -> str:
    ms = sorted(x * 1000 for x in samples)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (
        f"{name:<22} {len(ms):>6} {len(ms) / wall:>9.0f} {statistics.median(ms):>9.2f} {p99:>9.2f}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=300, help="requests per run")
    parser.add_argument("-c", type=int, default=10, help="concurrent clients")
    parser.add_argument("--database-url", help="default: a SQLite file in a temp dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        print(f"{'run':<22} {'reqs':>6} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9}")
        async with FakeSlackAPI() as fake:
            for guard in (True, False, True, False):
                started = time.perf_counter()
                samples = await run(url, fake, guard=guard, n=args.n, clients=args.c)
                name = "with replay guard" if guard else "without replay guard"
                print(row(name, samples, time.perf_counter() - started))
                fake.clear()


if __name__ == "__main__":
    asyncio.run(main())
