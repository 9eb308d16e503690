"""`grant:` in the policy file: checked with line numbers, planned, applied, exported."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from handlers.clock import FixedClock
from handlers.policy import export_policy
from storage.db import make_engine
from storage.models import Role
from storage.uow import UnitOfWork
from tests.unit.test_policy import T0, Db

HEAD = """\
admins: [alice@contoso.com]
principals:
  - {email: alice@contoso.com, name: Alice Admin}
roles:
"""

GOOD = (
    HEAD
    + """\
  - id: global-admin
    name: Global Administrator
    grant:
      - entra_role: 62e90394-69f5-4237-9190-012177145e10
  - id: oncall
    name: On call
    grant: [{entra_group: 4f1c2b7e-1d2a-4c59-9a51-3d1f0e2b8c11, access: owner, enforce: remove}]
  - id: prod
    name: Prod Contributor
    grant:
      - {azure_role: b24988ac-6180-42a0-ab88-20f7382dd24c,
         scope: /subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/prod}
      - {slack_usergroup: S0123ABC}
      - {webhook: "https://hooks.example.com/pim"}
  - id: plain
    name: Plain Role
"""
)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Db]:
    engine = make_engine(db_url)
    try:
        yield Db(UnitOfWork(engine), FixedClock(T0))
    finally:
        await engine.dispose()


async def test_grant_targets_are_planned_applied_and_exported(db: Db):
    plan = await db.apply(GOOD, dry_run=True)
    assert (
        "+ role global-admin (Global Administrator); grant: entra_role "
        "62e90394-69f5-4237-9190-012177145e10 at /"
    ) in plan
    assert (
        "+ role oncall (On call); grant: entra_group 4f1c2b7e-1d2a-4c59-9a51-3d1f0e2b8c11 "
        "(owner) enforce:remove"
    ) in plan
    assert "+ role plain (Plain Role)\n" in plan + "\n"
    async with db.uow.read() as s:
        assert (await s.scalars(select(Role))).all() == []  # a dry run changes nothing
    await db.apply(GOOD)
    async with db.uow.read() as s:
        stored = {r.id: r.grant_targets for r in await s.scalars(select(Role))}
    assert stored["global-admin"] == [
        {"entra_role": "62e90394-69f5-4237-9190-012177145e10", "scope": "/"}
    ]
    assert stored["plain"] is None
    assert len(stored["prod"]) == 3
    exported = await export_policy(db.uow)
    assert "grant:" in exported and "https://hooks.example.com/pim" in exported
    assert await db.apply(exported) == "No changes."  # the round trip plans nothing


async def test_a_changed_target_is_an_update(db: Db):
    await db.apply(GOOD)
    changed = GOOD.replace("S0123ABC", "S0999XYZ")
    plan = await db.apply(changed, dry_run=True)
    assert plan.startswith("~ role prod: grant [")
    assert "slack_usergroup S0123ABC" in plan and "-> [" in plan and "S0999XYZ" in plan


async def test_bad_grant_entries_are_named_by_line_and_change_nothing(db: Db):
    bad = (
        HEAD
        + """\
  - id: a
    name: A
    grant:
      - {entra_role: not-a-guid}
      - {azure_role: b24988ac-6180-42a0-ab88-20f7382dd24c}
      - {entra_group: 4f1c2b7e-1d2a-4c59-9a51-3d1f0e2b8c11, access: admin}
      - {webhook: "http://hooks.example.com/pim"}
      - {webhook: "https://hooks.example.com/pim", enforce: remove}
      - {slack_usergroup: S0123ABC, entra_role: 62e90394-69f5-4237-9190-012177145e10}
      - {entra_role: 62e90394-69f5-4237-9190-012177145e10, scope: tenant}
      - just text
  - id: b
    name: B
    grant: {webhook: "https://x.example.com"}
"""
    )
    message = await db.refused(bad)
    lines = message.splitlines()
    assert lines[0] == "policy.yaml: 9 errors, nothing changed"
    assert "policy.yaml:8: roles[0].grant[0].entra_role: 'not-a-guid' is not an id" in message
    assert "policy.yaml:9: roles[0].grant[1].azure_role: scope is required" in message
    assert (
        "policy.yaml:10: roles[0].grant[2].access: must be member or owner, not 'admin'" in message
    )
    assert (
        "policy.yaml:11: roles[0].grant[3].webhook: 'http://hooks.example.com/pim' is not an "
        "https:// URL" in message
    )
    assert "policy.yaml:12: roles[0].grant[4].enforce: unknown key" in message
    assert "policy.yaml:13: roles[0].grant[5]: name exactly one of" in message
    assert "policy.yaml:14: roles[0].grant[6].scope: 'tenant' must start with /" in message
    assert "policy.yaml:15: roles[0].grant[7]: must be a mapping" in message
    assert "policy.yaml:18: roles[1].grant: must be a list" in message
    assert await db.counts() == (0, 0, 0, 0)
