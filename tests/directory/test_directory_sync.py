"""People from the directory (README, "People from the directory"): the policy names an Entra
group and the Slack workspace; a sync upserts principals from both, fills in ids nobody
holds, refuses to rebind one, and marks people who left without deleting them."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from handlers.directory_sync import DirectoryUnavailable, sync_directory
from handlers.errors import PolicyError
from handlers.identity import LINK_REFUSED
from handlers.policy import apply_policy, export_policy
from storage.models import AuditEvent, DirectoryPerson, DirectorySource, Principal
from tests.directory.conftest import GROUP

POLICY = f"""
directory:
  - {{entra_group: {GROUP}}}
  - {{slack: workspace}}
"""


async def people(eng) -> dict[str, tuple[str, str | None, str | None]]:
    async with eng.uow.read() as s:
        return {
            p.email: (p.display_name, p.slack_id, p.teams_id)
            for p in await s.scalars(select(Principal))
        }


async def actions(eng, action: str) -> list[tuple[str, dict]]:
    async with eng.uow.read() as s:
        return [
            (e.target, e.details)
            for e in await s.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        ]


async def bind(eng, email: str, **ids: str) -> None:
    async with eng.uow.transaction() as s:
        person = await s.scalar(select(Principal).where(Principal.email == email))
        for column, value in ids.items():
            setattr(person, column, value)


def directory(ms, slack) -> None:
    ms.graph.add_user("u-ann", mail="Ann@Contoso.com", name="Ann Archer")
    ms.graph.add_user("u-bob", mail="bob@contoso.com", name="Bob Builder")
    for user in ("u-ann", "u-bob"):
        ms.graph.add_group_member(GROUP, user)
    slack.add_user("U0ANN", "ann@contoso.com", "Ann Archer")
    slack.add_user("U0BOBNEW", "bob@contoso.com", "Bob (new account)")
    slack.add_user("U0ERIN", "erin@contoso.com", "Erin Example")
    slack.add_user("U0BOT", "deploy@contoso.com", "Deploy Bot")["is_bot"] = True


async def test_the_policy_names_sources_and_a_dry_run_changes_nothing(eng):
    plan = await apply_policy(eng.uow, eng.clock, text=POLICY, dry_run=True)
    assert plan.render() == (f"+ directory entra_group: {GROUP}\n+ directory slack: workspace")
    assert await eng.count(DirectorySource) == 0
    await apply_policy(eng.uow, eng.clock, text=POLICY)
    assert await eng.count(DirectorySource) == 2
    assert [t for t, _ in await actions(eng, "policy.directory.created")] == [
        f"entra_group:{GROUP}",
        "slack:workspace",
    ]
    exported = await export_policy(eng.uow)
    assert (await apply_policy(eng.uow, eng.clock, text=exported)).render() == "No changes."
    # A file without `directory:` leaves the sources alone; an empty list removes them.
    assert (await apply_policy(eng.uow, eng.clock, text="admins: []\n")).render() == "No changes."
    gone = await apply_policy(eng.uow, eng.clock, text="directory: []\n")
    assert gone.render().count("- directory") == 2


@pytest.mark.parametrize(
    "text, message",
    [
        ("directory: [{entra_group: not-a-guid}]", "is not a group object id"),
        ("directory: [{slack: everyone}]", "must be workspace"),
        ("directory: [{ldap: x}]", "unknown source (expected entra_group or slack)"),
        ("directory: [{slack: workspace}, {slack: workspace}]", "is listed twice"),
        ("directory: slack", "must be a list of sources"),
    ],
)
async def test_a_bad_directory_is_refused_by_line_and_changes_nothing(eng, text, message):
    with pytest.raises(PolicyError) as err:
        await apply_policy(eng.uow, eng.clock, text=text)
    assert message in str(err.value)
    assert str(err.value).splitlines()[0] == "policy.yaml: 1 error, nothing changed"
    assert await eng.count(DirectorySource) == 0


async def test_sync_upserts_people_and_never_rebinds_an_id(eng, ms, slack, readers):
    await apply_policy(eng.uow, eng.clock, text=POLICY)
    await bind(eng, "bob@contoso.com", slack_id="U0BOB")
    directory(ms, slack)

    report = await sync_directory(eng.uow, eng.clock, readers=readers)

    found = await people(eng)
    assert found["ann@contoso.com"] == ("Ann Archer", "U0ANN", "u-ann")
    assert found["erin@contoso.com"] == ("Erin Example", "U0ERIN", None)
    # Bob keeps the Slack account he is bound to; his Entra id was free, so it is filled in.
    assert found["bob@contoso.com"] == ("Bob Builder", "U0BOB", "u-bob")
    assert "deploy@contoso.com" not in found
    assert (report.created, report.refused) == (2, 1)
    [(target, details)] = await actions(eng, LINK_REFUSED)
    assert target == "bob@contoso.com"
    assert (details["presented_id"], details["bound_id"]) == ("U0BOBNEW", "U0BOB")
    alerts = await eng.outbox("alert")
    assert [(who, "U0BOBNEW" in p["headline"]) for who, _, p in alerts] == [
        ("alice@contoso.com", True)
    ]
    created = await actions(eng, "directory.principal.created")
    assert sorted(t for t, _ in created) == ["ann@contoso.com", "erin@contoso.com"]
    assert [t for t, _ in await actions(eng, "principal.teams_id_linked")] == [
        "ann@contoso.com",
        "bob@contoso.com",
    ]

    # Again, unchanged: nothing new but the refusal, which is audited each time (admins are
    # told once a day).
    before = await eng.count(AuditEvent)
    again = await sync_directory(eng.uow, eng.clock, readers=readers)
    assert (again.created, again.linked, again.renamed, again.left) == (0, 0, 0, 0)
    assert await eng.count(AuditEvent) == before + 1
    assert len(await eng.outbox("alert")) == 1


async def test_people_who_leave_are_kept_and_marked_and_may_come_back(eng, ms, slack, readers):
    await apply_policy(eng.uow, eng.clock, text=POLICY)
    directory(ms, slack)
    await sync_directory(eng.uow, eng.clock, readers=readers)
    ms.graph.group_members[GROUP].remove("u-ann")
    del slack.users["U0ANN"]

    report = await sync_directory(eng.uow, eng.clock, readers=readers)

    assert report.left == 1
    assert "ann@contoso.com" in await people(eng)  # not deleted
    assert [t for t, _ in await actions(eng, "directory.principal.left")] == ["ann@contoso.com"]
    async with eng.uow.read() as s:
        left = await s.scalar(
            select(DirectoryPerson.left_at)
            .join(Principal, Principal.id == DirectoryPerson.principal_id)
            .where(Principal.email == "ann@contoso.com")
        )
    assert left == eng.clock.now()

    ms.graph.group_members[GROUP].append("u-ann")
    back = await sync_directory(eng.uow, eng.clock, readers=readers)
    assert (back.returned, back.left) == (1, 0)
    assert [t for t, _ in await actions(eng, "directory.principal.returned")] == ["ann@contoso.com"]


async def test_a_source_that_fails_changes_nothing(eng, ms, slack, readers):
    await apply_policy(eng.uow, eng.clock, text=POLICY)
    directory(ms, slack)
    await sync_directory(eng.uow, eng.clock, readers=readers)
    before = (await people(eng), await eng.count(AuditEvent))
    ms.graph.fail_next("/members", status=500, times=10)

    with pytest.raises(DirectoryUnavailable, match="entra_group"):
        await sync_directory(eng.uow, eng.clock, readers=readers)

    assert (await people(eng), await eng.count(AuditEvent)) == before
    async with eng.uow.read() as s:
        assert (
            await s.scalar(
                select(func.count())
                .select_from(DirectoryPerson)
                .where(DirectoryPerson.left_at.is_not(None))
            )
            == 0
        )


async def test_a_source_without_credentials_is_named(eng, slack, microsoft):
    from bot.directory_wiring import directory_readers

    await apply_policy(eng.uow, eng.clock, text="directory: [{slack: workspace}]")
    bare = directory_readers(microsoft, slack=None)
    with pytest.raises(DirectoryUnavailable, match="no reader for directory source slack"):
        await sync_directory(eng.uow, eng.clock, readers=bare)
