"""Slack ack throughput: pim-bot's `/pim roles` against a bare slack-bolt app, A B A B.

    apt-get install -y wrk                                   # the load generator (wrk 4.1)
    .venv/bin/python bench/ack.py                            # SQLite, then a throwaway PostgreSQL
    .venv/bin/python bench/ack.py --database sqlite --seconds 10 --rounds 2
    .venv/bin/python bench/ack.py --database-url postgresql://USER@HOST:PORT/DB

(A) is the real `pim-bot serve` process (its aiohttp server, Bolt app, engine, sweeper and
outbox worker) on a SQLite file or on PostgreSQL (a throwaway server from tests/pgserver.py,
fsync off, unless --database-url names one), with examples/policy.yaml plus --principals
eligible people. (B) is a bare slack-bolt AsyncApp on aiohttp whose `/pim` listener only acks.
Both talk to the fake Slack Web API of tests/slackfake (auth.test, response_url), which runs
in this process; every server listens on 127.0.0.1, on an ephemeral port.

wrk drives each app with --connections connections (50) for --seconds, alternating A B A B
(--rounds pairs) after a short warm-up of each. Its Lua script cycles through a file of
pre-signed requests, all distinct (own trigger_id, timestamp of the run) so that replay
protection never refuses one, each `/pim roles` from one of the principals in turn; a fresh
file is signed just before each run, so every signature is inside Slack's 5-minute window.
A run that used a request twice says so (column "reused"). The table gives requests/s, p50 and
p99 of the HTTP answer (the ack), on A's rows A's rate over the B run that follows it, and the
CPU time each server process spent per request, the steadiest figure on a busy machine. A's
label says where its answer went: in the ack body, or after an empty ack to response_url.
Numbers depend on the machine and on anything else running on it: compare A with B from the
same run, not with another machine's numbers. With wrk's closed loop, latency is about
connections / rate, so a p99 under 100 ms at 50 connections needs several hundred requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml
from aiohttp import ClientSession

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repo root, for tests.*

from tests.slackfake import FakeSlackAPI  # noqa: E402

SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench"
WARMUP_SECONDS = 2
RESULT_MARK = "ACK-BENCH "
LUA = r"""
local threads, next_id = {}, 1
function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end
function init(args)
  local nthreads = tonumber(args[2])
  reqs, n, reused, i = {}, 0, 0, 0
  for line in io.lines(args[1]) do
    if i % nthreads == thread_id - 1 then
      local ts, sig, body = line:match("^(%S+)\t(%S+)\t(.*)$")
      reqs[#reqs + 1] = wrk.format("POST", "/slack/events", {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["X-Slack-Request-Timestamp"] = ts, ["X-Slack-Signature"] = sig}, body)
    end
    i = i + 1
  end
end
function request()
  n = n + 1
  if n > #reqs then n, reused = 1, reused + 1 end
  return reqs[n]
end
function done(summary, latency, requests)
  local reused = 0
  for _, t in ipairs(threads) do reused = reused + t:get("reused") end
  local e = summary.errors
  io.write(string.format('ACK-BENCH {"requests": %d, "seconds": %f, "p50_us": %d, ' ..
    '"p99_us": %d, "errors": %d, "non2xx": %d, "reused": %d}\n', summary.requests,
    summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status, reused))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_policy(n: int) -> str:
    """examples/policy.yaml plus n people, each eligible for three roles."""
    policy = yaml.safe_load((ROOT / "examples" / "policy.yaml").read_text())
    for i in range(n):
        email = f"user{i:04d}@contoso.com"
        policy["principals"].append(
            {"email": email, "name": f"User {i}", "slack_id": f"U0B{i:04d}"}
        )
        policy["assignments"] += [
            {"principal": email, "role": r, "type": "eligible"}
            for r in ("global-admin", "helpdesk-admin", "demo-short")
        ]
    return yaml.safe_dump(policy, sort_keys=False)


def write_requests(path: Path, *, count: int, users: int, response_url: str) -> None:
    """One signed `/pim roles` per line: timestamp, signature, form body (tab-separated)."""
    ts, key, nonce = str(int(time.time())), SECRET.encode(), os.urandom(4).hex()
    with path.open("w") as out:
        for i in range(count):
            body = urlencode(
                {
                    "token": "verification-token",
                    "team_id": "T1",
                    "team_domain": "contoso",
                    "channel_id": "C1",
                    "channel_name": "general",
                    "user_id": f"U0B{i % users:04d}",
                    "user_name": "bench",
                    "command": "/pim",
                    "text": "roles",
                    "api_app_id": "A1",
                    "is_enterprise_install": "false",
                    "response_url": response_url,
                    "trigger_id": f"{nonce}.{i}",
                }
            )
            sig = hmac.new(key, f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
            out.write(f"{ts}\tv0={sig}\t{body}\n")


async def wait_listening(port: int, proc: asyncio.subprocess.Process, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise SystemExit(f"server exited early:\n{log.read_text()[-3000:]}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise SystemExit(f"nothing listens on {port} after 60s:\n{log.read_text()[-3000:]}")


@asynccontextmanager
async def server(
    argv: list[str], env: dict[str, str], log: Path, port: int
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A server process, once it listens on `port`; stopped (SIGTERM) at the end."""
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=out, stderr=out, stdin=asyncio.subprocess.DEVNULL
        )
    try:
        await wait_listening(port, proc, log)
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


def pim_env(database_url: str, fake: FakeSlackAPI, policy: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIM_", "SLACK_", "MICROSOFT_")) and k != "DATABASE_URL"
    }
    env.update(
        {
            "DATABASE_URL": database_url,
            "PIM_POLICY": str(policy),
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": fake.base_url,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


async def quiet(database_url: str, fake: FakeSlackAPI, *, within: float = 900) -> None:
    """Wait for the start-up work (the policy's "you are eligible" DMs) to go out: no
    message left to send, and then nothing reaches the fake Slack for a second."""
    from sqlalchemy import func, select

    from storage.db import make_engine
    from storage.models import OutboxMessage

    engine, deadline = make_engine(database_url), time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            async with engine.connect() as conn:
                left = await conn.scalar(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(OutboxMessage.status.in_(["pending", "sending"]))
                )
            if not left:
                break
            await asyncio.sleep(0.5)
        else:
            raise SystemExit(f"pim-bot still has {left} messages to send after {within}s")
    finally:
        await engine.dispose()
    seen = -1
    while len(fake.calls()) != seen:
        seen = len(fake.calls())
        await asyncio.sleep(1)
    fake.clear()


async def check_answer(port: int, fake: FakeSlackAPI, users: int, tmp: Path) -> str:
    """Send one signed request; say where its answer went (the ack body or response_url)."""
    path = tmp / "one.txt"
    write_requests(path, count=1, users=users, response_url=fake.response_url("check"))
    ts, sig, body = path.read_text().rstrip("\n").split("\t")
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": sig,
    }
    async with (
        ClientSession() as http,
        http.post(f"http://127.0.0.1:{port}/slack/events", data=body, headers=headers) as resp,
    ):
        text = await resp.text()
        if resp.status != 200:
            raise SystemExit(f"/slack/events answered {resp.status}: {text}")
    if "Global Administrator" in text:
        return "in ack"
    await asyncio.sleep(3)
    answered = [c for c in fake.calls("response_url") if c.path.endswith("/check")]
    return "after ack" if answered else "none"


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, every thread) the process has used so far (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wrk(
    server: asyncio.subprocess.Process,
    port: int,
    *,
    seconds: int,
    connections: int,
    threads: int,
    tmp: Path,
    fake: FakeSlackAPI,
    users: int,
    rate_guess: int,
) -> dict[str, Any]:
    """One wrk run against `port`; also the CPU time the server process used per request."""
    requests = tmp / "requests.txt"
    write_requests(
        requests,
        count=int(rate_guess * seconds) + 1000,
        users=users,
        response_url=fake.response_url("bench"),
    )
    script = tmp / "ack.lua"
    script.write_text(LUA)
    proc = await asyncio.create_subprocess_exec(
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}",
        "--",
        str(requests),
        str(threads),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    cpu_before = cpu_seconds(server.pid)
    out, _ = await proc.communicate()
    cpu_after = cpu_seconds(server.pid)
    fake.clear()  # the fake keeps every call; forget this run's respond() calls
    for line in out.decode().splitlines():
        if line.startswith(RESULT_MARK):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            result["rps"] = result["requests"] / result["seconds"]
            result["cpu_ms"] = (
                None
                if cpu_before is None or cpu_after is None
                else 1000 * (cpu_after - cpu_before) / max(1, result["requests"])
            )
            return result
    raise SystemExit(f"wrk failed:\n{out.decode()}")


def row(app: str, db: str, r: dict[str, Any], ratio: str) -> str:
    bad = r["errors"] + r["non2xx"]
    cpu = "?" if r["cpu_ms"] is None else f"{r['cpu_ms']:.2f}"
    return (
        f"| {app} | {db} | {r['rps']:.0f} | {r['p50_us'] / 1000:.1f} | "
        f"{r['p99_us'] / 1000:.1f} | {ratio} | {cpu} | {bad} | {r['reused']} |"
    )


async def run(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian/Ubuntu: apt-get install -y wrk)")
    databases = ["url"] if args.database_url else args.database
    load = dict(
        seconds=args.seconds,
        connections=args.connections,
        threads=args.threads,
        users=args.principals,
        rate_guess=args.rate_guess,
    )
    lines, summary = [], []
    load_before = os.getloadavg()[0]
    async with AsyncExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ack-bench-")))
        fake = await stack.enter_async_context(FakeSlackAPI())
        policy = tmp / "policy.yaml"
        policy.write_text(bench_policy(args.principals))
        b_port = free_port()
        bare = await stack.enter_async_context(
            server(
                [
                    sys.executable,
                    __file__,
                    "--bare-server",
                    str(b_port),
                    "--api-url",
                    fake.base_url,
                ],
                dict(os.environ),
                tmp / "bare.log",
                b_port,
            )
        )
        for db in databases:
            url, label = await database_url(db, args, stack, tmp)
            a_port = free_port()
            pim = [
                str(Path(sys.executable).with_name("pim-bot")),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(a_port),
            ]
            async with server(
                pim, pim_env(url, fake, policy), tmp / f"pim-{label}.log", a_port
            ) as app:
                await quiet(url, fake)
                answer = await check_answer(a_port, fake, args.principals, tmp)
                for proc, port in ((app, a_port), (bare, b_port)):  # warm-up: pools, caches
                    await wrk(proc, port, **{**load, "seconds": WARMUP_SECONDS}, tmp=tmp, fake=fake)
                ratios, p99s = [], []
                for _ in range(args.rounds):
                    a = await wrk(app, a_port, **load, tmp=tmp, fake=fake)
                    b = await wrk(bare, b_port, **load, tmp=tmp, fake=fake)
                    ratios.append(a["rps"] / b["rps"])
                    p99s.append(a["p99_us"] / 1000)
                    lines.append(row(f"pim-bot (answer {answer})", label, a, f"{ratios[-1]:.2f}"))
                    lines.append(row("bare slack-bolt", label, b, ""))
                summary.append(
                    f"{label}: ratio A/B {statistics.mean(ratios):.2f} "
                    f"(min {min(ratios):.2f}), pim-bot p99 worst {max(p99s):.1f} ms"
                )
    print(
        f"/pim roles, {args.connections} connections, {args.threads} wrk threads, "
        f"{args.seconds:g}s per run, A B x{args.rounds}, {args.principals} principals; "
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, "
        f"{os.cpu_count()} CPUs\n"
    )
    print(
        "| app | database | requests/s | p50 ms | p99 ms | ratio A/B | CPU ms/request | errors "
        "| reused |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(lines))
    print()
    print("\n".join(summary))


async def database_url(
    db: str, args: argparse.Namespace, stack: AsyncExitStack, tmp: Path
) -> tuple[str, str]:
    if db == "url":
        return args.database_url, args.database_url.partition(":")[0]
    if db == "sqlite":
        return f"sqlite:///{tmp / 'bench.db'}", "sqlite"
    from tests.pgserver import PostgresServer

    pg = stack.enter_context(PostgresServer())
    return pg.create_database("pim_bench"), "postgresql"


def bare_server(port: int, api_url: str) -> None:
    """(B): a bare slack-bolt AsyncApp on aiohttp, answering `/pim` with a fixed ack."""
    from aiohttp import web
    from slack_bolt.async_app import AsyncAck, AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    app = AsyncApp(client=AsyncWebClient(token=TOKEN, base_url=api_url), signing_secret=SECRET)

    @app.command("/pim")
    async def pim(ack: AsyncAck) -> None:
        await ack("ok")

    web.run_app(app.web_app(path="/slack/events"), host="127.0.0.1", port=port, print=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"]
    )
    parser.add_argument("--database-url", help="use this database instead (PostgreSQL or SQLite)")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2, help="A B pairs per database")
    parser.add_argument("--connections", "-c", type=int, default=50)
    parser.add_argument("--threads", "-t", type=int, default=2, help="wrk threads")
    parser.add_argument("--principals", type=int, default=100)
    parser.add_argument(
        "--rate-guess", type=int, default=5000, help="signed requests per second of run to prepare"
    )
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--api-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        bare_server(args.bare_server, args.api_url)
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
