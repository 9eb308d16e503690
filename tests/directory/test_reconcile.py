"""Reconciliation (README, "Reconciliation"): drift both ways, with the real Slack user group
provider against the Slack fake and the real grant table and worker.

- Someone in a user group pim-bot did not put there: Entra's "roles assigned outside PIM"
  alert to the admins (high, audited), and with `enforce: remove` they are taken out.
- Someone pim-bot put there who is missing: the grant is queued again and comes back.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select

from bot.grants_worker import GrantsWorker
from bot.slack.usergroups import SlackUsergroupProvider
from handlers.activation import ActivationAsk, request_activation
from handlers.grants.reconcile import OUTSIDE, REMOVED, RESTORED, reconcile
from handlers.grants.reconcile_book import SqlGrantBook
from handlers.policy import apply_policy
from handlers.timers import lifecycle_actions, run_due_timers
from storage.models import AuditEvent, Grant
from vocab.states import GrantStatus

BOB = "bob@contoso.com"
POLICY = """
admins: [alice@contoso.com]
principals:
  - {email: alice@contoso.com, name: Alice Admin, slack_id: U0ALICE}
  - {email: bob@contoso.com, name: Bob Builder, slack_id: U0BOB}
  - {email: carol@contoso.com, name: Carol Chen, slack_id: U0CAROL}
roles:
  - id: slack-admins
    name: Slack Admins
    settings: {require_justification: false}
    grant: [{slack_usergroup: S0ADMINS, enforce: remove}]
  - id: deployers
    name: Deployers
    settings: {require_justification: false}
    grant: [{slack_usergroup: S0DEPLOY}]
assignments:
  - {principal: bob@contoso.com, role: slack-admins, type: eligible, end: 2027-06-30}
  - {principal: bob@contoso.com, role: deployers, type: eligible, end: 2027-06-30}
"""


@pytest.fixture
async def world(eng, slack):
    slack.add_usergroup("S0ADMINS")
    slack.add_usergroup("S0DEPLOY")
    providers = {
        "slack_usergroup": SlackUsergroupProvider(
            AsyncWebClient(token="xoxb-test", base_url=slack.base_url)
        )
    }
    worker = GrantsWorker(eng.uow, eng.clock, providers, worker="test")
    await apply_policy(eng.uow, eng.clock, text=POLICY)
    for role in ("slack-admins", "deployers"):
        await request_activation(
            eng.uow, eng.clock, actor=BOB, ask=ActivationAsk(role=role, duration=timedelta(hours=1))
        )
    assert await worker.run_once() == 2
    assert slack.usergroups == {"S0ADMINS": ["U0BOB"], "S0DEPLOY": ["U0BOB"]}
    return providers, worker


async def run(eng, providers):
    return await reconcile(eng.uow, eng.clock, book=SqlGrantBook(), providers=providers)


async def audited(eng, action: str) -> list[str]:
    async with eng.uow.read() as s:
        return list(
            await s.scalars(
                select(AuditEvent.target).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        )


async def test_nothing_to_say_when_everything_matches(eng, world):
    providers, _ = world
    report = await run(eng, providers)
    assert (report.targets, report.outside, report.restored) == (2, [], [])
    assert await eng.outbox("alert") == []


async def test_access_given_outside_pim_is_alerted_and_removed_where_enforced(eng, slack, world):
    providers, _ = world
    slack.usergroups["S0ADMINS"].append("U0MALLORY")  # a stranger
    slack.usergroups["S0DEPLOY"].append("U0CAROL")  # someone pim-bot knows, not via pim-bot

    report = await run(eng, providers)

    assert sorted(report.outside) == [
        ("slack_usergroup:S0ADMINS", "U0MALLORY"),
        ("slack_usergroup:S0DEPLOY", "U0CAROL"),
    ]
    assert report.removed == [("slack_usergroup:S0ADMINS", "U0MALLORY")]
    assert slack.usergroups == {"S0ADMINS": ["U0BOB"], "S0DEPLOY": ["U0BOB", "U0CAROL"]}
    assert sorted(await audited(eng, OUTSIDE)) == [
        "U0MALLORY/slack-admins",
        "carol@contoso.com/deployers",
    ]
    assert await audited(eng, REMOVED) == ["U0MALLORY/slack-admins"]
    alerts = sorted(
        ((who, p["headline"], p["details"]) for who, _, p in await eng.outbox("alert")),
        key=lambda a: "Carol" in a[1],
    )
    assert [who for who, _, _ in alerts] == ["alice@contoso.com", "alice@contoso.com"]
    assert alerts[0][1] == (
        "Roles are being assigned outside of PIM: account U0MALLORY holds "
        "Slack Admins (slack_usergroup:S0ADMINS), which pim-bot did not "
        "grant."
    )
    assert alerts[0][2] == [
        "high · roles_assigned_outside_pim",
        "pim-bot removed it (enforce: remove).",
    ]
    assert alerts[1][1].startswith(
        "Roles are being assigned outside of PIM: Carol Chen (carol@contoso.com) holds Deployers"
    )

    # A standing exception is not repeated every 15 minutes; a day later it is.
    again = await run(eng, providers)
    assert again.outside == [("slack_usergroup:S0DEPLOY", "U0CAROL")]
    assert len(await eng.outbox("alert")) == 2
    eng.clock.advance(timedelta(hours=24, minutes=1))
    await run(eng, providers)
    assert len(await eng.outbox("alert")) == 3


async def test_a_missing_grant_is_restored_and_alerted(eng, slack, world):
    providers, worker = world
    slack.usergroups["S0DEPLOY"].remove("U0BOB")  # someone took Bob out by hand

    report = await run(eng, providers)

    async with eng.uow.read() as s:
        grant = await s.scalar(select(Grant).where(Grant.role_id == "deployers"))
    assert report.restored == [grant.grant_id]
    assert grant.status == GrantStatus.PENDING_PROVISIONING
    assert await audited(eng, RESTORED) == ["bob@contoso.com/deployers"]
    [(who, _, payload)] = await eng.outbox("alert")
    assert who == "alice@contoso.com"
    assert payload["headline"] == (
        "Bob Builder (bob@contoso.com) should hold Deployers "
        "(slack_usergroup:S0DEPLOY) through pim-bot, but it was "
        "missing there: pim-bot is granting it again."
    )
    assert await worker.run_once() == 1
    assert slack.usergroups["S0DEPLOY"] == ["U0BOB"]
    assert (await run(eng, providers)).restored == []


async def test_access_that_ended_is_neither_missing_nor_outside(eng, slack, world):
    providers, worker = world
    eng.clock.advance(timedelta(hours=1, seconds=1))
    await run_due_timers(eng.uow, eng.clock, worker="test", actions=lifecycle_actions())
    assert await worker.run_once() == 2
    assert slack.usergroups == {"S0ADMINS": [], "S0DEPLOY": []}

    report = await run(eng, providers)
    assert (report.outside, report.restored) == ([], [])
    assert await eng.outbox("alert") == []


async def test_a_provider_that_cannot_be_read_is_skipped_this_time(eng, slack, world):
    providers, _ = world
    slack.fail_next("usergroups.users.list", error="fatal_error")
    report = await run(eng, providers)
    assert len(report.unreadable) == 1
    assert report.targets == 1
    assert await eng.outbox("alert") == []
