"""Policy as code (README, "Policy as code"): plan, apply, dry run, bad files, prune, export round trip."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cards.views import Reply
from handlers.chat import command_table, run_text
from handlers.clock import FixedClock
from handlers.digest.report import DigestOptions
from handlers.errors import PolicyError
from handlers.policy import apply_policy, export_policy
from handlers.settings import RoleSettings
from storage.audit import verify_chain
from storage.db import make_engine
from storage.migrate import upgrade
from storage.models import AuditEvent, Principal, Role, Schedule
from storage.uow import UnitOfWork

EXAMPLE = (Path(__file__).parents[2] / "examples" / "policy.yaml").read_text()
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
TABLES = (Principal, Role, Schedule, AuditEvent)

EXAMPLE_PLAN = """\
+ principal alice@contoso.com (Alice Admin)
+ admin alice@contoso.com
+ principal bob@contoso.com (Bob Builder)
+ principal carol@contoso.com (Carol Chen)
+ principal dave@contoso.com (Dave Duty)
+ role global-admin (Global Administrator)
+ role helpdesk-admin (Helpdesk Administrator)
+ role billing-admin (Billing Administrator)
+ role demo-short (Demo Short Role)
+ assignment bob@contoso.com eligible global-admin until 2027-06-30T00:00:00Z
+ assignment bob@contoso.com eligible helpdesk-admin permanently
+ assignment bob@contoso.com eligible demo-short permanently
+ assignment dave@contoso.com eligible billing-admin permanently
+ assignment carol@contoso.com eligible helpdesk-admin permanently"""

SMALL = """\
admins: [alice@contoso.com]
principals:
  - {email: alice@contoso.com, name: Alice Admin}
  - {email: bob@contoso.com, name: Bob Builder, slack_id: U0BOB}
roles:
  - id: helpdesk-admin
    name: Helpdesk Administrator
    settings: {max_duration: 4h}
  - id: strict
    name: Strict Role
    settings: {allow_permanent_eligible: false}
assignments:
  - {principal: bob@contoso.com, role: helpdesk-admin, type: eligible}
"""


@dataclass
class Db:
    uow: UnitOfWork
    clock: FixedClock

    async def apply(self, text: str, *, dry_run: bool = False, prune: bool = False) -> str:
        plan = await apply_policy(self.uow, self.clock, text=text, dry_run=dry_run, prune=prune)
        assert plan.applied is not dry_run
        return plan.render()

    async def refused(self, text: str) -> str:
        with pytest.raises(PolicyError) as caught:
            await apply_policy(self.uow, self.clock, text=text)
        return str(caught.value)

    async def counts(self) -> tuple[int, ...]:
        async with self.uow.transaction() as s:
            return tuple(
                [int(await s.scalar(select(func.count()).select_from(t)) or 0) for t in TABLES]
            )

    async def schedules(self) -> set[tuple[str, str, str, str, datetime | None, bool]]:
        """(email, role, kind, member type, end, from_policy) of every current schedule."""
        async with self.uow.transaction() as s:
            rows = await s.scalars(select(Schedule).where(Schedule.state == "Active"))
            return {
                (r.principal.email, r.role_id, r.kind, r.member_type, r.end_at, r.from_policy)
                for r in rows
            }

    async def say(self, who: str, text: str) -> str:
        reply = await run_text(
            self.uow,
            self.clock,
            commands=command_table(digest=DigestOptions()),
            actor=who,
            text=text,
        )
        assert isinstance(reply, Reply) and reply.ok, reply
        return reply.text


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Db]:
    engine = make_engine(db_url)
    try:
        yield Db(UnitOfWork(engine), FixedClock(T0))
    finally:
        await engine.dispose()


async def test_example_file_applies_and_reads_as_a_plan(db):
    assert await db.apply(EXAMPLE) == EXAMPLE_PLAN
    # 4 principals, 4 roles, 5 eligibilities; audit: 9 policy changes + 5 eligible.assigned
    assert await db.counts() == (4, 4, 5, 14)
    async with db.uow.transaction() as s:
        alice = await s.scalar(select(Principal).where(Principal.email == "alice@contoso.com"))
        assert alice.admin and alice.slack_id == "U0ALICE" and alice.from_policy
        role = await s.get(Role, "global-admin")
        settings = RoleSettings.from_mapping(role.settings)
        assert settings.approvers == ("carol@contoso.com",)
        assert settings.approval_channel == {"slack": "C0APPROVALS"}
        actions = (await s.scalars(select(AuditEvent.action).order_by(AuditEvent.id))).all()
        assert actions[:3] == [
            "policy.principal.created",
            "policy.admin.created",
            "policy.principal.created",
        ]
        events = (await s.scalars(select(AuditEvent))).all()
        assert (await verify_chain(s)).ok
    assert {e.actor for e in events} == {"policy:policy.yaml"}
    assert (
        "bob@contoso.com",
        "global-admin",
        "eligible",
        "Assigned",
        datetime(2027, 6, 30, tzinfo=UTC),
        True,
    ) in await db.schedules()


async def test_applying_twice_changes_nothing_the_second_time(db):
    await db.apply(EXAMPLE)
    before = await db.counts()
    assert await db.apply(EXAMPLE) == "No changes."
    assert await db.counts() == before


async def test_dry_run_shows_the_plan_and_writes_nothing(db):
    assert await db.apply(EXAMPLE, dry_run=True) == EXAMPLE_PLAN
    assert await db.counts() == (0, 0, 0, 0)
    await db.apply(EXAMPLE)
    before = await db.counts()
    edited = EXAMPLE.replace("settings: {max_duration: 4h}", "settings: {max_duration: 2h}")
    assert await db.apply(edited, dry_run=True, prune=True) == (
        "~ role helpdesk-admin: max_duration 4h -> 2h"
    )
    assert await db.counts() == before


async def test_bad_file_names_every_mistake_by_line_and_changes_nothing(db):
    await db.apply(EXAMPLE)
    before = await db.counts()
    bad = """\
admins: [alice@contoso.com, zed@contoso.com]
principals:
  - {email: alice@contoso.com, name: Alice Admin}
  - {email: bob@contoso, name: Bob Builder}
roles:
  - id: helpdesk-admin
    name: Helpdesk Administrator
    settings:
      max_duration: 30h
      approvers: [carol@contoso.com]
assignments:
  - {principal: alice@contoso.com, role: helpdesk-admin, type: eligble}
  - {principal: alice@contoso.com, role: billing-admin, type: eligible, end: 2026-01-01}
colour: blue
"""
    assert (
        await db.refused(bad)
        == """\
policy.yaml: 8 errors, nothing changed
policy.yaml:1: admins: zed@contoso.com is not listed under principals; add them there
policy.yaml:4: principals[1].email: 'bob@contoso' is not an email address
policy.yaml:9: roles[0].settings.max_duration: 1d6h is over the 24h upper bound
policy.yaml:10: roles[0].settings.approvers: carol@contoso.com is not listed under principals
policy.yaml:12: assignments[0].type: must be eligible or active, not 'eligble'
policy.yaml:13: assignments[1].role: billing-admin is not listed under roles (assignments may \
only name roles in this file)
policy.yaml:13: assignments[1].end: 2026-01-01T00:00:00Z is in the past
policy.yaml:14: colour: unknown key (expected one of: admins, principals, roles, assignments, reviews, directory)"""
    )
    assert await db.counts() == before


async def test_broken_yaml_names_the_line(db):
    message = await db.refused("principals:\n  - {email: a@b.co, name: A\n")
    assert message.startswith(
        "policy.yaml: 1 error, nothing changed\npolicy.yaml:3: not valid YAML: "
    )
    assert await db.counts() == (0, 0, 0, 0)


async def test_permanent_assignment_refused_when_the_role_forbids_it(db):
    text = SMALL + "  - {principal: bob@contoso.com, role: strict, type: eligible}\n"
    assert await db.refused(text) == (
        "policy.yaml: 1 error, nothing changed\n"
        "policy.yaml:14: assignments[1]: strict does not allow permanent eligible "
        "assignments; give an end date"
    )
    dated = text.replace("strict, type: eligible}", "strict, type: eligible, end: 2027-01-01}")
    assert (await db.apply(dated)).endswith(
        "\n+ assignment bob@contoso.com eligible strict until 2027-01-01T00:00:00Z"
    )


async def test_setting_change_shows_in_plan_database_and_audit(db):
    await db.apply(EXAMPLE)
    edited = EXAMPLE.replace(
        "settings: {max_duration: 4h}", "settings: {max_duration: 2h, require_ticket: true}"
    )
    assert await db.apply(edited) == (
        "~ role helpdesk-admin: max_duration 4h -> 2h; require_ticket false -> true"
    )
    async with db.uow.transaction() as s:
        role = await s.get(Role, "helpdesk-admin")
        settings = RoleSettings.from_mapping(role.settings)
        assert settings.max_duration == timedelta(hours=2) and settings.require_ticket
        last = (await s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()))).first()
    assert (last.action, last.target, last.actor) == (
        "policy.role.updated",
        "helpdesk-admin",
        "policy:policy.yaml",
    )
    assert last.details == {"max_duration": ["4h", "2h"], "require_ticket": [False, True]}


async def test_file_sets_what_it_says_and_keeps_ids_it_leaves_out(db):
    await db.apply(EXAMPLE)
    # Bob and Carol swap Slack ids (unique column), Bob is renamed, Alice is no longer admin;
    # Alice's Slack id, left out of the file, is kept (it may come from an email lookup).
    edited = (
        EXAMPLE.replace("admins: [alice@contoso.com]", "admins: [carol@contoso.com]")
        .replace("name: Bob Builder, slack_id: U0BOB", "name: Bob B, slack_id: U0CAROL")
        .replace("name: Carol Chen,  slack_id: U0CAROL", "name: Carol Chen, slack_id: U0BOB")
        .replace("name: Alice Admin, slack_id: U0ALICE", "name: Alice Admin")
    )
    assert (
        await db.apply(edited)
        == """\
- admin alice@contoso.com
~ principal bob@contoso.com: name "Bob Builder" -> "Bob B"; slack_id U0BOB -> U0CAROL
~ principal carol@contoso.com: slack_id U0CAROL -> U0BOB
+ admin carol@contoso.com"""
    )
    async with db.uow.transaction() as s:
        people = {p.email: p for p in await s.scalars(select(Principal))}
    assert people["bob@contoso.com"].slack_id == "U0CAROL"
    assert people["carol@contoso.com"].slack_id == "U0BOB" and people["carol@contoso.com"].admin
    assert not people["alice@contoso.com"].admin
    assert people["alice@contoso.com"].slack_id == "U0ALICE"
    assert await db.apply(edited) == "No changes."


async def test_ids_and_names_held_outside_the_file_are_refused(db):
    await db.apply(SMALL)
    before = await db.counts()
    other = """\
principals:
  - {email: erin@contoso.com, name: Erin, slack_id: U0BOB}
roles:
  - {id: helpdesk, name: HELPDESK administrator}
"""
    assert await db.refused(other) == (
        "policy.yaml: 2 errors, nothing changed\n"
        "policy.yaml:2: slack_id U0BOB of erin@contoso.com already belongs to bob@contoso.com, "
        "who is not in this file\n"
        "policy.yaml:4: role helpdesk: the name 'HELPDESK administrator' already belongs to "
        "role helpdesk-admin, which is not in this file"
    )
    assert await db.counts() == before


async def test_two_roles_can_swap_names(db):
    await db.apply(SMALL)
    swapped = (
        SMALL.replace("name: Helpdesk Administrator", "name: SWAP")
        .replace("name: Strict Role", "name: Helpdesk Administrator")
        .replace("name: SWAP", "name: Strict Role")
    )
    assert await db.apply(swapped) == (
        '~ role helpdesk-admin: name "Helpdesk Administrator" -> "Strict Role"\n'
        '~ role strict: name "Strict Role" -> "Helpdesk Administrator"'
    )
    assert await db.apply(swapped) == "No changes."


async def test_empty_file_is_refused_not_read_as_remove_everything(db):
    await db.apply(SMALL)
    before = await db.counts()
    for text in ("", "# nothing yet\n"):
        with pytest.raises(PolicyError) as info:
            await apply_policy(db.uow, db.clock, text=text, prune=True)
        assert str(info.value).splitlines()[-1] == (
            "policy.yaml:1: the file is empty; a policy lists at least admins, principals or roles"
        )
    assert await db.counts() == before


async def test_changed_end_replaces_the_assignment(db):
    await db.apply(EXAMPLE)
    edited = EXAMPLE.replace("end: 2027-06-30T00:00:00Z", "end: 2027-12-31")
    assert await db.apply(edited) == (
        "~ assignment bob@contoso.com eligible global-admin: "
        "end 2027-06-30T00:00:00Z -> 2027-12-31T00:00:00Z"
    )
    ends = {end for (email, role, *_, end, _) in await db.schedules() if role == "global-admin"}
    assert ends == {datetime(2027, 12, 31, tzinfo=UTC)}
    assert await db.apply(edited) == "No changes."


async def test_prune_removes_only_policy_made_assignments(db):
    await db.apply(EXAMPLE)
    await db.say("alice@contoso.com", "assign dave@contoso.com helpdesk-admin eligible")
    await db.say("bob@contoso.com", "activate helpdesk-admin 2h printers are down")
    trimmed = EXAMPLE.replace(
        "  - {principal: bob@contoso.com,  role: helpdesk-admin, type: eligible}\n", ""
    )
    assert await db.apply(trimmed) == "No changes."  # without --prune nothing is removed
    assert await db.apply(trimmed, prune=True) == (
        "- assignment bob@contoso.com eligible helpdesk-admin"
    )
    left = {(email, role, kind, member) for email, role, kind, member, *_ in await db.schedules()}
    assert ("bob@contoso.com", "helpdesk-admin", "eligible", "Assigned") not in left
    assert ("dave@contoso.com", "helpdesk-admin", "eligible", "Assigned") in left  # admin-made
    assert ("bob@contoso.com", "helpdesk-admin", "active", "Activated") in left  # activation
    async with db.uow.transaction() as s:
        last = (await s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()))).first()
    assert (last.action, last.actor, last.details["policy"]) == (
        "eligible.removed",
        "policy:policy.yaml",
        True,
    )
    assert await db.apply(trimmed, prune=True) == "No changes."


async def test_active_assignment_while_an_activation_runs_is_refused(db):
    await db.apply(EXAMPLE)
    await db.say("bob@contoso.com", "activate helpdesk-admin 2h printers are down")
    text = EXAMPLE + (
        "  - {principal: bob@contoso.com, role: helpdesk-admin, type: active, end: 2027-01-01}\n"
    )
    assert await db.refused(text) == (
        "policy.yaml: 1 error, nothing changed\n"
        "policy.yaml:44: assignments[5]: bob@contoso.com has activated helpdesk-admin until "
        "2026-11-27T11:00:00Z; remove that activation in chat or wait for it to end, then apply"
    )


async def test_export_then_apply_is_a_no_op_and_rebuilds_an_empty_database(db, tmp_path):
    await db.apply(EXAMPLE)
    await db.say("alice@contoso.com", "assign dave@contoso.com helpdesk-admin active 3d")
    await db.say("bob@contoso.com", "activate helpdesk-admin 2h printers are down")
    exported = await export_policy(db.uow)
    assert (
        "\n  - {principal: dave@contoso.com, role: helpdesk-admin, type: active, "
        "end: '2026-11-30T09:00:00Z'}\n"
    ) in exported
    assert "activated" not in exported.lower()
    assert await db.apply(exported, prune=True) == "No changes."

    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/fresh.db")
    try:
        await upgrade(engine)
        fresh = Db(UnitOfWork(engine), db.clock)
        await fresh.apply(exported)
        assert await fresh.schedules() == {
            (email, role, kind, member, end, True)
            for email, role, kind, member, end, _ in await db.schedules()
            if member == "Assigned"
        }
        assert await export_policy(fresh.uow) == exported
    finally:
        await engine.dispose()
