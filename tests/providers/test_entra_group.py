"""PIM for Groups (member or owner of an Entra group) against the fake Graph."""

from __future__ import annotations

import pytest

from bot.providers.entra_group import EntraGroupProvider
from bot.providers.graph import MicrosoftApis
from handlers.grants.provider import ProviderError, Target
from tests.msfake import MicrosoftFakes
from tests.providers.jobs import BOB, CAROL, job, undo, wire

ONCALL = "4f1c2d3e-0000-4000-8000-00000000a11c"
REQUESTS = "group/assignmentScheduleRequests"


@pytest.fixture
def groups(apis: MicrosoftApis) -> EntraGroupProvider:
    return EntraGroupProvider(apis.graph)


async def test_grant_membership_with_expiration_then_revoke(
    ms: MicrosoftFakes, groups: EntraGroupProvider
) -> None:
    grant = job("entra_group", ONCALL, access="member")

    await groups.grant(grant)

    [sent] = ms.graph.requests
    assert (sent["action"], sent["accessId"], sent["groupId"]) == ("adminAssign", "member", ONCALL)
    assert sent["scheduleInfo"]["expiration"] == {
        "type": "afterDateTime",
        "endDateTime": wire(grant.end),
    }
    member = Target(kind="entra_group", ref=ONCALL, access="member")
    assert await groups.members(member) == {BOB.teams_id}

    await groups.revoke(undo(grant))

    assert ms.graph.requests[-1]["action"] == "adminRemove"
    assert await groups.members(member) == frozenset()


async def test_ownership_is_its_own_access(ms: MicrosoftFakes, groups: EntraGroupProvider) -> None:
    await groups.grant(job("entra_group", ONCALL, access="owner"))
    assert ms.graph.group_holders(ONCALL, "owner") == {BOB.teams_id}
    assert await groups.members(Target(kind="entra_group", ref=ONCALL)) == frozenset()
    assert await groups.members(Target(kind="entra_group", ref=ONCALL, access="owner")) == {
        BOB.teams_id
    }


async def test_granting_again_and_revoking_again_succeed(
    ms: MicrosoftFakes, groups: EntraGroupProvider
) -> None:
    grant = job("entra_group", ONCALL)
    await groups.grant(grant)
    await groups.grant(grant)
    await groups.revoke(undo(grant))
    await groups.revoke(undo(grant))
    assert ms.graph.group_holders(ONCALL) == set()
    assert [c.status for c in ms.graph.calls if REQUESTS in c.path] == [201, 400, 201, 400]


async def test_members_include_people_added_outside_pim(
    ms: MicrosoftFakes, groups: EntraGroupProvider
) -> None:
    ms.graph.add_group_member(ONCALL, CAROL.teams_id)
    await groups.grant(job("entra_group", ONCALL))
    assert await groups.members(Target(kind="entra_group", ref=ONCALL)) == {
        BOB.teams_id,
        CAROL.teams_id,
    }


@pytest.mark.parametrize(
    ("status", "permanent", "retry_after"),
    [(429, False, 3), (503, False, 3), (500, False, None), (403, True, None), (404, True, None)],
)
async def test_failures_are_classified(
    ms: MicrosoftFakes,
    groups: EntraGroupProvider,
    status: int,
    permanent: bool,
    retry_after: float | None,
) -> None:
    ms.graph.fail_next(
        REQUESTS, status=status, retry_after=retry_after if status in (429, 503) else None
    )
    with pytest.raises(ProviderError) as raised:
        await groups.grant(job("entra_group", ONCALL))
    assert (raised.value.permanent, raised.value.retry_after) == (permanent, retry_after)
    assert ms.graph.group_holders(ONCALL) == set()


async def test_timeout_is_retryable(ms: MicrosoftFakes) -> None:
    ms.graph.hang_next(REQUESTS, seconds=1.0)
    async with MicrosoftApis.from_env(timeout=0.3) as impatient:
        with pytest.raises(ProviderError) as raised:
            await EntraGroupProvider(impatient.graph).revoke(undo(job("entra_group", ONCALL)))
    assert not raised.value.permanent


async def test_an_unknown_access_is_refused_before_calling_graph(
    ms: MicrosoftFakes, groups: EntraGroupProvider
) -> None:
    with pytest.raises(ProviderError, match="member or owner") as raised:
        await groups.grant(job("entra_group", ONCALL, access="admin"))
    assert raised.value.permanent and not ms.graph.calls
