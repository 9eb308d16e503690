"""Who pim-bot is to Microsoft Graph and Azure Resource Manager, and where those live.

Credentials come from azure-identity and its standard variables: a client secret
(AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET), a certificate
(AZURE_CLIENT_CERTIFICATE_PATH, optionally AZURE_CLIENT_CERTIFICATE_PASSWORD), workload
identity (AZURE_FEDERATED_TOKEN_FILE, set by AKS) or a managed identity (AZURE_CLIENT_ID picks
a user-assigned one). AZURE_AUTHORITY_HOST names another cloud's login endpoint.

Developer-tool credentials (Azure CLI, PowerShell, VS Code, azd, the shared token cache) are
left out: on a server they would silently act as whoever last signed in on the machine. An
operator who wants DefaultAzureCredential's whole chain says so with azure-identity's own
AZURE_TOKEN_CREDENTIALS (`dev`, `prod`, or one credential's name).
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials_async import AsyncTokenCredential

logger = logging.getLogger(__name__)

GRAPH_URL = "https://graph.microsoft.com"
ARM_URL = "https://management.azure.com"
# Token requests that fail with a 5xx are retried this often by azure-identity itself; the
# grant engine retries the whole grant with its own backoff after that.
TOKEN_RETRIES = 2
# Any of these makes the environment describe a service principal (EnvironmentCredential).
SERVICE_PRINCIPAL = ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH")


def scope_for(url: str) -> str:
    """The OAuth scope of a resource API: its origin plus `/.default` (the app's granted
    application permissions)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/.default"


@dataclass(frozen=True, slots=True)
class Clouds:
    """The Graph and ARM endpoints: the public cloud unless PIM_GRAPH_URL / PIM_ARM_URL name
    a national cloud (or, in tests, a fake)."""

    graph: str = GRAPH_URL
    arm: str = ARM_URL

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Clouds:
        env = os.environ if env is None else env
        graph = (env.get("PIM_GRAPH_URL") or "").strip() or GRAPH_URL
        arm = (env.get("PIM_ARM_URL") or "").strip() or ARM_URL
        for name, url in (("PIM_GRAPH_URL", graph), ("PIM_ARM_URL", arm)):
            if urlsplit(url).scheme != "https":
                raise ValueError(f"{name} must be an https:// URL, not {url!r}")
        return cls(graph=graph.rstrip("/"), arm=arm.rstrip("/"))

    @property
    def graph_scope(self) -> str:
        return scope_for(self.graph)

    @property
    def arm_scope(self) -> str:
        return scope_for(self.arm)


def tls_context() -> ssl.SSLContext:
    """The TLS trust for Graph, ARM and the token endpoint: the system's, which OpenSSL's
    SSL_CERT_FILE / SSL_CERT_DIR may replace (a corporate proxy's CA, or a test CA). Built
    when called, so the variables in force at start-up count."""
    return ssl.create_default_context()


def azure_credential(**options: Any) -> AsyncTokenCredential:
    """The one azure-identity async credential the AZURE_* variables describe.

    Picked the way DefaultAzureCredential walks its chain (service principal from the
    environment, then workload identity, then managed identity) but without the chain: one
    credential, so a refused secret surfaces as its own error (with the login endpoint's
    answer) rather than as "no credential in the chain worked", and nothing falls through to
    a different identity by surprise. `options` go to azure-identity, e.g. `transport=`.
    """
    from azure.identity.aio import (
        DefaultAzureCredential,
        EnvironmentCredential,
        ManagedIdentityCredential,
        WorkloadIdentityCredential,
    )

    env = os.environ
    options.setdefault("retry_total", TOKEN_RETRIES)
    if (env.get("AZURE_TOKEN_CREDENTIALS") or "").strip():
        logger.info("Azure sign-in: DefaultAzureCredential, as AZURE_TOKEN_CREDENTIALS says")
        return DefaultAzureCredential(**options)  # the operator chose explicitly
    if any(env.get(name) for name in SERVICE_PRINCIPAL):
        logger.info(
            "Azure sign-in: service principal %s from the environment", env.get("AZURE_CLIENT_ID")
        )
        return EnvironmentCredential(**options)
    if env.get("AZURE_FEDERATED_TOKEN_FILE"):
        logger.info("Azure sign-in: workload identity %s", env.get("AZURE_CLIENT_ID"))
        return WorkloadIdentityCredential(**options)
    client_id = env.get("AZURE_CLIENT_ID") or None
    logger.info("Azure sign-in: managed identity %s", client_id or "(system-assigned)")
    return ManagedIdentityCredential(client_id=client_id, **options)
