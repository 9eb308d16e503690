"""Which of these providers a process runs, from its environment.

The Microsoft ones (Entra roles, PIM for Groups, Azure roles) share one sign-in and one HTTP
session. They are on when the environment names an Azure identity: AZURE_CLIENT_ID (a
service principal, workload identity or user-assigned managed identity), a managed identity
endpoint (IDENTITY_ENDPOINT, MSI_ENDPOINT), or AZURE_TOKEN_CREDENTIALS (e.g.
`ManagedIdentityCredential` for a VM's system-assigned identity). Without any of these a grant
of those kinds waits as pending rather than failing against an identity nobody configured.
The Slack user group provider is on with SLACK_BOT_TOKEN.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from bot.config import ConfigError
from bot.providers.azure_role import AzureRoleProvider
from bot.providers.credentials import Clouds
from bot.providers.entra_group import EntraGroupProvider
from bot.providers.entra_role import EntraRoleProvider
from bot.providers.graph import DEFAULT_TIMEOUT, MicrosoftApis
from handlers.grants.provider import Provider

AZURE_IDENTITY = ("AZURE_CLIENT_ID", "AZURE_TOKEN_CREDENTIALS", "IDENTITY_ENDPOINT", "MSI_ENDPOINT")


def microsoft_apis(
    env: Mapping[str, str] | None = None, *, timeout: float = DEFAULT_TIMEOUT
) -> MicrosoftApis | None:
    """The shared Graph and ARM clients, or None when no Azure identity is configured. Directory
    sync reads Entra groups through the same clients (bot.providers.directory)."""
    env = os.environ if env is None else env
    if not any((env.get(name) or "").strip() for name in AZURE_IDENTITY):
        return None
    try:
        clouds = Clouds.from_env(env)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return MicrosoftApis(clouds=clouds, timeout=timeout)


def microsoft_providers(apis: MicrosoftApis | None) -> dict[str, Provider]:
    """Entra roles, PIM for Groups and Azure roles on `apis` (none without them)."""
    if apis is None:
        return {}
    return {
        "entra_role": EntraRoleProvider(apis.graph),
        "entra_group": EntraGroupProvider(apis.graph),
        "azure_role": AzureRoleProvider(apis.arm),
    }


def slack_providers(*, token: str | None, api_url: str | None = None) -> dict[str, Provider]:
    if not token:
        return {}
    # Imported here: slack_sdk loads only in processes that use Slack.
    from bot.slack.usergroups import usergroup_provider

    return {"slack_usergroup": usergroup_provider(token=token, api_url=api_url)}
