"""Azure RBAC roles through PIM for Azure resources, against the fake ARM over HTTPS."""

from __future__ import annotations

import pytest

from bot.providers.azure_role import AzureRoleProvider, request_name, role_definition_id
from bot.providers.graph import MicrosoftApis
from handlers.grants.provider import ProviderError, Target
from tests.msfake import MicrosoftFakes
from tests.providers.jobs import BOB, job, undo, wire

CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
SUB = "/subscriptions/00000000-0000-4000-8000-000000000001"
PROD = f"{SUB}/resourceGroups/prod"
REQUESTS = "roleAssignmentScheduleRequests"


@pytest.fixture
def azure(apis: MicrosoftApis) -> AzureRoleProvider:
    return AzureRoleProvider(apis.arm)


def target(scope: str = PROD) -> Target:
    return Target(kind="azure_role", ref=CONTRIBUTOR, scope=scope)


async def test_grant_puts_a_named_request_with_expiration(
    ms: MicrosoftFakes, azure: AzureRoleProvider
) -> None:
    grant = job("azure_role", CONTRIBUTOR, scope=PROD)

    await azure.grant(grant)

    [put] = [c for c in ms.arm.calls if REQUESTS in c.path]
    assert put.method == "PUT"
    assert put.path.startswith(
        f"{PROD}/providers/Microsoft.Authorization/{REQUESTS}/"
        f"{request_name(grant)}?api-version=2020-10-01"
    )
    props = put.body["properties"]
    assert props["roleDefinitionId"] == (
        f"{SUB}/providers/Microsoft.Authorization/roleDefinitions/{CONTRIBUTOR}"
    )
    assert props["requestType"] == "AdminAssign" and props["principalId"] == BOB.teams_id
    assert props["scheduleInfo"]["expiration"] == {
        "type": "AfterDateTime",
        "endDateTime": wire(grant.end),
    }
    assert await azure.members(target()) == {BOB.teams_id}


async def test_revoke_then_revoke_again(ms: MicrosoftFakes, azure: AzureRoleProvider) -> None:
    grant = job("azure_role", CONTRIBUTOR, scope=PROD)
    await azure.grant(grant)

    await azure.revoke(undo(grant))
    await azure.revoke(undo(grant))  # same request name: ARM says it exists; access is gone

    assert ms.arm.holders(CONTRIBUTOR, PROD) == set()
    assert await azure.members(target()) == frozenset()
    assert len(ms.arm.requests) == 2


async def test_granting_again_is_one_assignment(
    ms: MicrosoftFakes, azure: AzureRoleProvider
) -> None:
    grant = job("azure_role", CONTRIBUTOR, scope=PROD)
    await azure.grant(grant)
    await azure.grant(grant)
    other = job("azure_role", CONTRIBUTOR, scope=PROD, grant_id="G-2")
    await azure.grant(other)  # another grant of what Bob holds: RoleAssignmentExists
    assert ms.arm.holders(CONTRIBUTOR, PROD) == {BOB.teams_id}
    assert len(ms.arm.requests) == 1


async def test_a_grant_removed_behind_our_back_is_restored_by_granting_again(
    ms: MicrosoftFakes, azure: AzureRoleProvider
) -> None:
    grant = job("azure_role", CONTRIBUTOR, scope=PROD)
    await azure.grant(grant)
    ms.arm.assignments.clear()  # someone removed it in the portal

    await azure.grant(grant)  # reconciliation restores the same grant

    assert ms.arm.holders(CONTRIBUTOR, PROD) == {BOB.teams_id}


async def test_members_counts_only_this_scope(ms: MicrosoftFakes, azure: AzureRoleProvider) -> None:
    ms.arm.page_size = 1
    await azure.grant(job("azure_role", CONTRIBUTOR, scope=PROD))
    ms.arm.assign_directly("outsider", CONTRIBUTOR, PROD)
    ms.arm.assign_directly("inherited", CONTRIBUTOR, SUB)
    ms.arm.assign_directly("below", CONTRIBUTOR, f"{PROD}/providers/Microsoft.Sql/servers/s1")
    ms.arm.assign_directly("reader", "acdd72a7-3385-48ef-bd42-f606fba81ae7", PROD)
    assert await azure.members(target()) == {BOB.teams_id, "outsider"}


@pytest.mark.parametrize(
    ("status", "permanent", "retry_after"), [(429, False, 5), (500, False, None), (403, True, None)]
)
async def test_failures_are_classified(
    ms: MicrosoftFakes,
    azure: AzureRoleProvider,
    status: int,
    permanent: bool,
    retry_after: float | None,
) -> None:
    ms.arm.fail_next(
        REQUESTS,
        status=status,
        code="AuthorizationFailed" if status == 403 else None,
        retry_after=retry_after,
    )
    with pytest.raises(ProviderError) as raised:
        await azure.grant(job("azure_role", CONTRIBUTOR, scope=PROD))
    assert (raised.value.permanent, raised.value.retry_after) == (permanent, retry_after)
    assert ms.arm.holders(CONTRIBUTOR, PROD) == set()


async def test_timeout_is_retryable(ms: MicrosoftFakes) -> None:
    ms.arm.hang_next(REQUESTS, seconds=1.0)
    async with MicrosoftApis.from_env(timeout=0.3) as impatient:
        with pytest.raises(ProviderError) as raised:
            await AzureRoleProvider(impatient.arm).grant(job("azure_role", CONTRIBUTOR, scope=PROD))
    assert not raised.value.permanent


async def test_a_target_without_a_scope_is_refused(
    ms: MicrosoftFakes, azure: AzureRoleProvider
) -> None:
    with pytest.raises(ProviderError, match="needs an ARM scope") as raised:
        await azure.grant(job("azure_role", CONTRIBUTOR))
    assert raised.value.permanent and not ms.arm.calls


def test_role_definition_ids() -> None:
    mg = "/providers/Microsoft.Management/managementGroups/contoso"
    assert role_definition_id(Target(kind="azure_role", ref=CONTRIBUTOR, scope=mg)) == (
        f"{mg}/providers/Microsoft.Authorization/roleDefinitions/{CONTRIBUTOR}"
    )
    full = f"{SUB}/providers/Microsoft.Authorization/roleDefinitions/{CONTRIBUTOR}"
    assert role_definition_id(Target(kind="azure_role", ref=full, scope=PROD)) == full
    with pytest.raises(ProviderError):
        role_definition_id(Target(kind="azure_role", ref="Contributor", scope=PROD))
