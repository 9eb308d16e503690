"""Entra directory roles through PIM, against the fake Graph over HTTPS with real
azure-identity sign-in: what Entra ends up holding, and what the engine is told."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.providers.entra_role import EntraRoleProvider
from bot.providers.graph import MicrosoftApis
from handlers.grants.provider import Person, ProviderError, Target
from tests.msfake import MicrosoftFakes
from tests.providers.jobs import BOB, CAROL, job, undo, wire

GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
REQUESTS = "roleAssignmentScheduleRequests"


@pytest.fixture
def entra(apis: MicrosoftApis) -> EntraRoleProvider:
    return EntraRoleProvider(apis.graph)


def target(scope: str | None = None) -> Target:
    return Target(kind="entra_role", ref=GLOBAL_ADMIN, scope=scope)


async def test_grant_assigns_the_role_with_entras_own_expiration(
    ms: MicrosoftFakes, entra: EntraRoleProvider
) -> None:
    grant = job("entra_role", GLOBAL_ADMIN)

    await entra.grant(grant)

    assert ms.graph.role_holders(GLOBAL_ADMIN) == {BOB.teams_id}
    [sent] = ms.graph.requests
    assert sent["action"] == "adminAssign"
    assert sent["directoryScopeId"] == "/"
    assert sent["scheduleInfo"]["expiration"] == {
        "type": "afterDateTime",
        "endDateTime": wire(grant.end),
    }
    assert sent["justification"] == "pim-bot R-7K2Q: INC-42 database is down (ticket INC-42)"
    assert await entra.members(target()) == {BOB.teams_id}


async def test_every_entra_grant_carries_an_expiration_and_entra_ends_it_itself(
    ms: MicrosoftFakes, entra: EntraRoleProvider
) -> None:
    grants = [
        job("entra_role", GLOBAL_ADMIN, person=p, grant_id=p.email, hours=h)
        for p, h in ((BOB, 2 / 3600), (CAROL, 8))
    ]
    for grant in grants:
        await entra.grant(grant)
    assert all(
        r["scheduleInfo"]["expiration"]["type"] == "afterDateTime"
        and r["scheduleInfo"]["expiration"]["endDateTime"]
        for r in ms.graph.requests
    )

    await asyncio.sleep(2.1)  # pim-bot does nothing: Entra ends Bob's on time by itself

    assert await entra.members(target()) == {CAROL.teams_id}


async def test_revoke_removes_the_assignment(ms: MicrosoftFakes, entra: EntraRoleProvider) -> None:
    grant = job("entra_role", GLOBAL_ADMIN, scope="/administrativeUnits/au-1")
    await entra.grant(grant)
    assert await entra.members(target("/administrativeUnits/au-1")) == {BOB.teams_id}

    await entra.revoke(undo(grant))

    assert ms.graph.requests[-1]["action"] == "adminRemove"
    assert await entra.members(target("/administrativeUnits/au-1")) == frozenset()


async def test_granting_again_and_revoking_again_succeed(
    ms: MicrosoftFakes, entra: EntraRoleProvider
) -> None:
    grant = job("entra_role", GLOBAL_ADMIN)
    await entra.grant(grant)
    await entra.grant(grant)  # a retry after a crash: Graph says RoleAssignmentExists
    assert ms.graph.role_holders(GLOBAL_ADMIN) == {BOB.teams_id}

    await entra.revoke(undo(grant))
    await entra.revoke(undo(grant))  # RoleAssignmentDoesNotExist: already gone
    assert ms.graph.role_holders(GLOBAL_ADMIN) == set()
    assert [c.status for c in ms.graph.calls if REQUESTS in c.path] == [201, 400, 201, 400]


async def test_throttled_grant_reports_retry_after_and_changes_nothing(
    ms: MicrosoftFakes, entra: EntraRoleProvider
) -> None:
    ms.graph.fail_next(REQUESTS, status=429, retry_after=7)

    with pytest.raises(ProviderError) as raised:
        await entra.grant(job("entra_role", GLOBAL_ADMIN))

    assert raised.value.retry_after == 7 and not raised.value.permanent
    assert ms.graph.role_holders(GLOBAL_ADMIN) == set()
    await entra.grant(job("entra_role", GLOBAL_ADMIN))  # the retry lands
    assert ms.graph.role_holders(GLOBAL_ADMIN) == {BOB.teams_id}


async def test_a_throttle_of_n_requests_a_second_answers_429s(
    ms: MicrosoftFakes, entra: EntraRoleProvider
) -> None:
    ms.graph.limit(2, burst=2)
    people = [Person(email=f"p{i}@contoso.com", name=f"P{i}", teams_id=f"id-{i}") for i in range(4)]
    outcomes = await asyncio.gather(
        *(entra.grant(job("entra_role", GLOBAL_ADMIN, person=p)) for p in people),
        return_exceptions=True,
    )
    refused = [o for o in outcomes if isinstance(o, ProviderError)]
    assert refused and all(o.retry_after and o.retry_after >= 1 for o in refused)
    assert len(ms.graph.role_holders(GLOBAL_ADMIN)) == 4 - len(refused)


async def test_server_error_is_retryable(ms: MicrosoftFakes, entra: EntraRoleProvider) -> None:
    ms.graph.fail_next(REQUESTS, status=500)
    with pytest.raises(ProviderError) as raised:
        await entra.grant(job("entra_role", GLOBAL_ADMIN))
    assert not raised.value.permanent and raised.value.retry_after is None
    assert "500" in str(raised.value)


async def test_timeout_is_retryable(ms: MicrosoftFakes) -> None:
    ms.graph.hang_next(REQUESTS, seconds=1.0)
    async with MicrosoftApis.from_env(timeout=0.3) as impatient:
        with pytest.raises(ProviderError) as raised:
            await EntraRoleProvider(impatient.graph).grant(job("entra_role", GLOBAL_ADMIN))
    assert not raised.value.permanent
    assert "did not answer within 0.3s" in str(raised.value)


async def test_forbidden_is_permanent(ms: MicrosoftFakes, entra: EntraRoleProvider) -> None:
    ms.graph.fail_next(REQUESTS, status=403)
    with pytest.raises(ProviderError) as raised:
        await entra.grant(job("entra_role", GLOBAL_ADMIN))
    assert raised.value.permanent
    assert "403 (Authorization_RequestDenied" in str(raised.value)


async def test_a_person_without_an_entra_id_fails_without_calling_graph(
    ms: MicrosoftFakes, entra: EntraRoleProvider
) -> None:
    nobody = Person(email="dan@contoso.com", name="Dan")
    with pytest.raises(ProviderError, match="dan@contoso.com has no Entra object id") as raised:
        await entra.grant(job("entra_role", GLOBAL_ADMIN, person=nobody))
    assert raised.value.permanent
    assert not [c for c in ms.graph.calls if REQUESTS in c.path]


async def test_entra_refusing_a_permanent_assignment_is_permanent(
    ms: MicrosoftFakes, entra: EntraRoleProvider
) -> None:
    with pytest.raises(ProviderError, match="ExpirationRule") as raised:
        await entra.grant(job("entra_role", GLOBAL_ADMIN, hours=None))
    assert raised.value.permanent


async def test_an_activation_already_over_is_not_granted(
    ms: MicrosoftFakes, entra: EntraRoleProvider
) -> None:
    late = job("entra_role", GLOBAL_ADMIN, hours=-1)
    with pytest.raises(ProviderError, match="activation ended") as raised:
        await entra.grant(late)
    assert raised.value.permanent and not ms.graph.requests


async def test_members_reads_every_holder_at_the_scope_only(
    ms: MicrosoftFakes, entra: EntraRoleProvider
) -> None:
    ms.graph.page_size = 1
    await entra.grant(job("entra_role", GLOBAL_ADMIN))
    ms.graph.assign_role_directly("outsider", GLOBAL_ADMIN)  # given in the portal
    ms.graph.assign_role_directly("elsewhere", GLOBAL_ADMIN, "/administrativeUnits/au-9")
    ms.graph.assign_role_directly("other-role", "fdd7a751-b60b-444a-984c-02652fe8fa1c")

    assert await entra.members(target()) == {BOB.teams_id, "outsider"}


async def test_a_grant_retried_late_starts_now_not_in_the_past(
    ms: MicrosoftFakes, entra: EntraRoleProvider
) -> None:
    grant = job("entra_role", GLOBAL_ADMIN)
    late = replace(grant, start=datetime.now(UTC) - timedelta(minutes=30))
    await entra.grant(late)
    start = ms.graph.requests[0]["scheduleInfo"]["startDateTime"]
    assert start >= wire(datetime.now(UTC) - timedelta(seconds=5))


async def test_naive_times_from_sqlite_are_taken_as_utc(
    ms: MicrosoftFakes, entra: EntraRoleProvider
) -> None:
    grant = job("entra_role", GLOBAL_ADMIN)
    naive = replace(
        grant,
        start=grant.start.replace(tzinfo=None),
        end=grant.end.replace(tzinfo=None) if grant.end else None,
    )
    await entra.grant(naive)
    assert ms.graph.requests[0]["scheduleInfo"]["expiration"]["endDateTime"] == wire(grant.end)
