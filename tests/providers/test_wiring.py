"""Which providers a process runs, from its environment, and that they work once wired."""

from __future__ import annotations

import pytest

from bot.config import ConfigError
from bot.providers.wiring import microsoft_apis, microsoft_providers, slack_providers
from handlers.grants.provider import Target
from tests.msfake import MicrosoftFakes
from tests.providers.jobs import BOB, job
from tests.slackfake import FakeSlackAPI


def test_without_an_azure_identity_no_microsoft_provider_runs() -> None:
    assert microsoft_apis({}) is None
    assert microsoft_apis({"AZURE_TENANT_ID": "t", "PIM_GRAPH_URL": "https://x"}) is None
    assert microsoft_providers(None) == {}


def test_a_plain_http_graph_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="PIM_GRAPH_URL must be an https:// URL"):
        microsoft_apis({"AZURE_CLIENT_ID": "c", "PIM_GRAPH_URL": "http://127.0.0.1:9"})


async def test_wired_microsoft_providers_share_one_sign_in(ms: MicrosoftFakes) -> None:
    providers = microsoft_providers(microsoft_apis())
    assert sorted(providers) == ["azure_role", "entra_group", "entra_role"]
    try:
        await providers["entra_role"].grant(job("entra_role", "role-1"))
        await providers["azure_role"].grant(
            job("azure_role", "b24988ac-6180-42a0-ab88-20f7382dd24c", scope="/subscriptions/s1")
        )
    finally:
        for provider in providers.values():
            await provider.close()  # type: ignore[attr-defined]
    assert ms.graph.role_holders("role-1") == {BOB.teams_id}
    assert len([c for c in ms.identity.calls if c.path.endswith("/token")]) == 2  # per API


async def test_wired_slack_provider_uses_the_api_url() -> None:
    assert slack_providers(token=None) == {}
    async with FakeSlackAPI() as slack:
        slack.add_usergroup("S0ADMINS", [])
        providers = slack_providers(token="xoxb-test", api_url=slack.base_url.rstrip("/"))
        await providers["slack_usergroup"].grant(job("slack_usergroup", "S0ADMINS"))
        assert await providers["slack_usergroup"].members(
            Target(kind="slack_usergroup", ref="S0ADMINS")
        ) == {"U0BOB"}
