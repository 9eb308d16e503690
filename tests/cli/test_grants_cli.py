"""`pim-bot grants [--failed]`: the admins' table of grants, from the real console script."""

from __future__ import annotations

import asyncio

from clihelp import Run, assert_no_traceback
from sqlalchemy import update

from bot.grants_worker import GrantsWorker
from bot.providers.webhook import WebhookProvider
from handlers.activation import ActivationAsk, request_activation
from handlers.clock import SystemClock
from storage.db import make_engine
from storage.models import Role
from storage.uow import UnitOfWork
from tests.webhookfake import SECRET, WebhookReceiver

POLICY = """admins: [alice@contoso.com]
principals:
  - {email: alice@contoso.com, name: Alice Admin}
  - {email: bob@contoso.com, name: Bob Builder}
roles:
  - id: db
    name: Database Break Glass
    settings: {require_justification: false}
    grant: [{webhook: "URL"}]
assignments:
  - {principal: bob@contoso.com, role: db, type: eligible}
"""


async def refused_grant(url: str) -> None:
    """Bob activates; the receiver refuses the grant for good (HTTP 400)."""
    engine = make_engine(url)
    uow, clock = UnitOfWork(engine), SystemClock()
    async with WebhookReceiver(script=["400"]) as hook:
        async with uow.transaction() as s:
            await s.execute(update(Role).values(grant_targets=[{"webhook": hook.url}]))
        await request_activation(
            uow, clock, actor="bob@contoso.com", ask=ActivationAsk(role="db", duration=None)
        )
        provider = WebhookProvider(secret=SECRET)
        await GrantsWorker(uow, clock, {"webhook": provider}, worker="cli-test").run_once()
        await provider.close()
    await engine.dispose()


def test_grants_table_lists_the_failed_one(
    run_pim: Run, read_pim: Run, sqlite_url: str, workdir
) -> None:
    (workdir / "grants.yaml").write_text(POLICY.replace("URL", "https://hooks.example.com/x"))
    assert read_pim("policy", "apply", "grants.yaml", db=sqlite_url).returncode == 0
    empty = run_pim("grants", "--failed", db=sqlite_url)
    assert (empty.returncode, empty.stdout) == (0, "No failed grants.\n")
    asyncio.run(refused_grant(sqlite_url))
    result = run_pim("grants", "--failed", db=sqlite_url)
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split() == [
        "STATUS",
        "PHASE",
        "PERSON",
        "ROLE",
        "TARGET",
        "REQUEST",
        "TRIES",
        "UPDATED",
        "ERROR",
    ]
    assert row.split()[:5] == ["Failed", "grant", "bob@contoso.com", "db", "webhook"]
    assert "webhook answered HTTP 400" in row
    assert len(run_pim("grants", db=sqlite_url).stdout.splitlines()) == 2
    bad = run_pim("grants", "--limit", "x", db=sqlite_url)
    assert bad.returncode == 2 and "invalid int value" in bad.stderr
    assert_no_traceback(result.stderr, bad.stderr)
