"""What an operator scrapes: /metrics counts what people did and how delivery goes; /readyz
says whether this replica should get traffic."""

from __future__ import annotations

import asyncio
import re
import time

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from bot.config import Settings
from bot.runtime import Runtime
from bot.server import make_app
from cards import views as v
from tests.e2e.conftest import SlackBot
from tests.e2e.slack_harness import ask


async def scrape(slack: SlackBot) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = await slack.http.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(await resp.text()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def eventually(slack: SlackBot, check, within: float = 8.0) -> dict:
    deadline = time.monotonic() + within
    while True:
        samples = await scrape(slack)
        if check(samples) or time.monotonic() > deadline:
            return samples
        await asyncio.sleep(0.1)


async def test_metrics_count_commands_decisions_activations_expiries(slack: SlackBot):
    answer = await ask(slack, "activate global-admin 1h keys")
    request_id = answer.split("Request ")[1].split(" ")[0]
    refused = await slack.command("U0BOB", "activate no-such-role 1h x", token="nope")
    assert refused.status == 200
    await slack.fake.wait_for("chat.postMessage", where=lambda c: c.args["channel"] == "U0CAROL")
    await slack.click(
        "U0CAROL", v.APPROVE, request_id, posted=slack.fake.messages_to("U0CAROL")[0].response
    )
    quick = await slack.command("U0BOB", "activate quick 1s", token="quick")
    assert quick.status == 200

    samples = await eventually(slack, lambda s: value(s, "pim_expiries_total", kind="active"))
    assert value(samples, "pim_commands_total", verb="activate", outcome="ok") == 2
    assert value(samples, "pim_commands_total", verb="activate", outcome="refused") == 1
    assert value(samples, "pim_decisions_total", decision="approved") == 1
    assert value(samples, "pim_activations_total") == 2
    assert value(samples, "pim_expiries_total", kind="active") == 1
    assert value(samples, "pim_audit_events_total", action="request.created") == 2
    # The quick role's expiry ran as a timer: its lag is in the histogram.
    assert value(samples, "pim_timer_lag_seconds_count", kind="expire") >= 1
    # Latency by route pattern, never by raw path.
    assert (
        value(
            samples, "pim_http_request_duration_seconds_count", route="/slack/events", status="200"
        )
        >= 4
    )
    assert ("pim_outbox_depth", ()) in samples
    assert ("pim_outbox_oldest_age_seconds", ()) in samples


async def test_metrics_outbox_depth_age_and_delivery_failures(slack: SlackBot):
    slack.fake.fail_next("chat.postMessage", status=500)
    await ask(slack, "activate global-admin 1h keys")
    samples = await eventually(
        slack, lambda s: value(s, "pim_delivery_failures_total", transport="slack", reason="error")
    )
    assert value(samples, "pim_delivery_failures_total", transport="slack", reason="error") == 1
    # Rows waiting now show as depth and age, read from the shared database at scrape time.
    async with slack.runtime.uow.transaction() as s:
        await s.execute(
            text(
                "UPDATE outbox SET status = 'pending', "
                "next_attempt_at = '2999-01-01 00:00:00' WHERE id IN "
                "(SELECT id FROM outbox ORDER BY id DESC LIMIT 2)"
            )
        )
    samples = await scrape(slack)
    assert value(samples, "pim_outbox_depth") >= 2
    assert value(samples, "pim_outbox_oldest_age_seconds") > 0


async def test_requests_carry_an_id(slack: SlackBot):
    resp = await slack.http.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert resp.headers["X-Request-Id"] == "abc-123"
    resp = await slack.http.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{16}", resp.headers["X-Request-Id"])


async def test_readyz_ready_then_not_when_migrations_are_behind(slack: SlackBot):
    resp = await slack.http.get("/readyz")
    assert resp.status == 200
    body = await resp.json()
    assert body["ready"] is True
    async with slack.runtime.uow.transaction() as s:
        await s.execute(text("UPDATE alembic_version SET version_num = 'older'"))
    resp = await slack.http.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["reason"] == "migrations not current"
    # Alive all the same: an orchestrator must not restart it for this.
    health = await slack.http.get("/healthz")
    assert health.status == 200
    assert (await health.json())["status"] == "degraded"


async def test_readyz_when_the_database_is_unreachable(tmp_path):
    from aiohttp.test_utils import TestClient, TestServer

    db = tmp_path / "gone.db"
    runtime = Runtime.build(Settings.from_env({"DATABASE_URL": f"sqlite:///{db}"}))
    await runtime.prepare()
    await runtime.uow.engine.dispose()
    db.unlink()
    (tmp_path / "gone.db").mkdir()  # a directory where the database file was: cannot open
    try:
        async with TestClient(TestServer(make_app(runtime), host="127.0.0.1")) as http:
            resp = await http.get("/readyz")
            assert resp.status == 503
            assert (await resp.json())["reason"] == "database unreachable"
            assert (await http.get("/healthz")).status == 200
            metrics = await http.get("/metrics")
            assert metrics.status == 200  # counters are served even without the database
    finally:
        await runtime.close()
