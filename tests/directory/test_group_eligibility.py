"""Eligibility through an Entra group (README, "People from the directory"): an assignment
may name `group:`; members are eligible while they are members, checked at request time
against Graph (the HTTPS fake) and remembered for a minute."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.directory_wiring import EntraGroupSource, EntraMembership
from handlers.activation import ActivationAsk, request_activation
from handlers.chat import command_table, run_text
from handlers.digest.report import DigestOptions
from handlers.errors import NotEligible, PolicyError
from handlers.group_eligibility import GroupMembership
from handlers.policy import apply_policy, export_policy
from handlers.queries import activation_form, home, my_roles
from storage.models import AuditEvent, DirectoryPerson, GroupAssignment, Principal
from tests.directory.conftest import GROUP, OTHER_GROUP

ERIN = "erin@contoso.com"
POLICY = f"""
principals:
  - {{email: erin@contoso.com, name: Erin Example}}
  - {{email: frank@contoso.com, name: Frank Field}}
roles:
  - id: oncall
    name: On-call Responder
    settings: {{require_justification: false, allow_permanent_eligible: true}}
assignments:
  - {{group: {GROUP}, role: oncall, type: eligible}}
"""


class Clock:
    """The cache's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticks() -> Clock:
    return Clock()


@pytest.fixture
def groups(ms, microsoft, ticks) -> GroupMembership:
    ms.graph.add_user("u-erin", mail=ERIN, name="Erin Example")
    ms.graph.add_user("u-frank", mail="frank@contoso.com", name="Frank Field")
    ms.graph.add_group_member(GROUP, "u-erin")
    return GroupMembership(
        EntraMembership(lambda g: EntraGroupSource(microsoft, g), timer=ticks), timer=ticks
    )


def ask(role: str = "oncall") -> ActivationAsk:
    return ActivationAsk(role=role)


async def test_a_member_activates_and_a_non_member_is_told_not_eligible(eng, ms, groups):
    await apply_policy(eng.uow, eng.clock, text=POLICY)

    view = await request_activation(eng.uow, eng.clock, actor=ERIN, ask=ask(), groups=groups)
    assert view.status == "Provisioned"
    with pytest.raises(NotEligible, match="You are not eligible for On-call Responder"):
        await request_activation(
            eng.uow, eng.clock, actor="frank@contoso.com", ask=ask(), groups=groups
        )
    async with eng.uow.read() as s:
        created = (
            await s.scalars(
                select(AuditEvent.details).where(AuditEvent.action == "request.created")
            )
        ).all()
    assert [d.get("group") for d in created] == [GROUP]
    # Without a directory wired, a group gives nobody anything.
    with pytest.raises(NotEligible):
        await request_activation(eng.uow, eng.clock, actor="frank@contoso.com", ask=ask())


async def test_roles_and_the_form_count_group_eligibility(eng, groups):
    await apply_policy(eng.uow, eng.clock, text=POLICY)
    roles = await my_roles(eng.uow, actor=ERIN, groups=groups)
    assert [(line.role.id, line.eligible_until, line.active_until) for line in roles.roles] == [
        ("oncall", None, None)
    ]
    form = await activation_form(eng.uow, actor=ERIN, groups=groups)
    assert [line.role.id for line in form.roles] == ["oncall"]
    assert (await my_roles(eng.uow, actor="frank@contoso.com", groups=groups)).roles == ()
    app_home, _, _ = await home(eng.uow, actor=ERIN, groups=groups)  # the Slack App Home
    assert [line.role.id for line in app_home.roles] == ["oncall"]
    # Bob's own eligibilities are untouched by the group check.
    bob = await activation_form(eng.uow, actor="bob@contoso.com", groups=groups)
    assert {line.role.id for line in bob.roles} == {"global-admin", "helpdesk-admin", "quick"}
    # And in chat, as people type it.
    commands = command_table(digest=DigestOptions(), groups=groups)
    answer = await run_text(
        eng.uow, eng.clock, commands=commands, actor=ERIN, text="activate oncall 1h"
    )
    assert answer.ok and "On-call Responder is active now" in answer.text
    listed = await run_text(eng.uow, eng.clock, commands=commands, actor=ERIN, text="roles")
    assert [line.role.id for line in listed.roles] == ["oncall"]


async def test_membership_is_remembered_briefly_then_asked_again(eng, ms, groups, ticks):
    await apply_policy(eng.uow, eng.clock, text=POLICY)
    await my_roles(eng.uow, actor=ERIN, groups=groups)
    await my_roles(eng.uow, actor=ERIN, groups=groups)
    listed = [c for c in ms.graph.calls if "/members" in c.path]
    assert len(listed) == 1  # one Graph listing for both
    ms.graph.group_members[GROUP].remove("u-erin")
    ticks.now += 61

    with pytest.raises(NotEligible):
        await request_activation(eng.uow, eng.clock, actor=ERIN, ask=ask(), groups=groups)


async def test_graph_down_means_nobody_gains_access(eng, ms, groups):
    await apply_policy(eng.uow, eng.clock, text=POLICY)
    ms.graph.fail_next("/members", status=500)
    with pytest.raises(NotEligible):
        await request_activation(eng.uow, eng.clock, actor=ERIN, ask=ask(), groups=groups)
    # Not remembered: once Graph answers, Erin is eligible again.
    view = await request_activation(eng.uow, eng.clock, actor=ERIN, ask=ask(), groups=groups)
    assert view.status == "Provisioned"


async def test_someone_who_left_the_directory_is_not_eligible_through_a_group(eng, groups):
    await apply_policy(eng.uow, eng.clock, text=POLICY)
    async with eng.uow.transaction() as s:
        erin = await s.scalar(select(Principal).where(Principal.email == ERIN))
        s.add(
            DirectoryPerson(
                principal_id=erin.id, sources=[], seen_at=eng.clock.now(), left_at=eng.clock.now()
            )
        )
    with pytest.raises(NotEligible):
        await request_activation(eng.uow, eng.clock, actor=ERIN, ask=ask(), groups=groups)


async def test_group_assignments_plan_apply_export_and_prune(eng):
    plan = await apply_policy(eng.uow, eng.clock, text=POLICY, dry_run=True)
    assert f"+ group_assignment group {GROUP} eligible oncall permanently" in plan.render()
    await apply_policy(eng.uow, eng.clock, text=POLICY)
    assert await eng.count(GroupAssignment) == 1
    exported = await export_policy(eng.uow)
    assert f"group: {GROUP}" in exported
    assert (await apply_policy(eng.uow, eng.clock, text=exported)).render() == "No changes."
    moved = POLICY.replace("type: eligible}", "type: eligible, end: 2027-01-01}")
    assert (
        "end permanent -> 2027-01-01T00:00:00Z"
        in (await apply_policy(eng.uow, eng.clock, text=moved)).render()
    )
    without = POLICY.split("assignments:")[0]
    assert (await apply_policy(eng.uow, eng.clock, text=without)).render() == "No changes."
    pruned = await apply_policy(eng.uow, eng.clock, text=without, prune=True)
    assert pruned.render() == f"- group_assignment group {GROUP} eligible oncall"
    assert await eng.count(GroupAssignment) == 0


@pytest.mark.parametrize(
    "item, message",
    [
        (f"{{group: {GROUP}, role: oncall, type: active}}", "a group can only be made eligible"),
        ("{group: nope, role: oncall, type: eligible}", "is not a group object id"),
        (f"{{group: {GROUP}, role: nothing, type: eligible}}", "nothing is not listed under roles"),
        (f"{{group: {GROUP}, role: oncall, type: eligible, colour: red}}", "unknown key"),
    ],
)
async def test_a_bad_group_assignment_is_refused_by_line(eng, item, message):
    text = POLICY.replace(f"{{group: {GROUP}, role: oncall, type: eligible}}", item)
    with pytest.raises(PolicyError) as err:
        await apply_policy(eng.uow, eng.clock, text=text)
    assert message in str(err.value)
    assert await eng.count(GroupAssignment) == 0


async def test_the_same_group_twice_is_refused(eng):
    text = POLICY + f"  - {{group: {GROUP.upper()}, role: oncall, type: eligible}}\n"
    with pytest.raises(PolicyError, match="listed twice"):
        await apply_policy(eng.uow, eng.clock, text=text)
    ok = POLICY + f"  - {{group: {OTHER_GROUP}, role: oncall, type: eligible}}\n"
    await apply_policy(eng.uow, eng.clock, text=ok)
    assert await eng.count(GroupAssignment) == 2


async def test_a_person_eligible_by_name_is_not_said_to_be_eligible_through_a_group(
    eng, ms, groups
):
    await apply_policy(
        eng.uow,
        eng.clock,
        text=POLICY.replace("role: oncall", "role: quick").replace(
            "roles:\n",
            "roles:\n  - {id: quick, name: Quick Role, settings: "
            "{min_duration: 1s, max_duration: 1h, require_justification: "
            "false, allow_permanent_eligible: true}}\n",
        ),
    )
    ms.graph.add_user("u-bob", mail="bob@contoso.com", name="Bob Builder")
    ms.graph.add_group_member(GROUP, "u-bob")  # Bob is in the group and eligible by name
    await request_activation(
        eng.uow, eng.clock, actor="bob@contoso.com", ask=ActivationAsk(role="quick"), groups=groups
    )
    await request_activation(eng.uow, eng.clock, actor=ERIN, ask=ask("quick"), groups=groups)
    async with eng.uow.read() as s:
        created = (
            await s.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == "request.created")
                .order_by(AuditEvent.id)
            )
        ).all()
    assert [(e.actor, e.details.get("group")) for e in created] == [
        ("bob@contoso.com", None),
        (ERIN, GROUP),
    ]
