"""azure-identity sign-in from the standard AZURE_* variables, against the fake login
endpoint over verified TLS: client secret, certificate, workload identity, managed identity."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from bot.providers.credentials import ARM_URL, GRAPH_URL, Clouds, azure_credential
from bot.providers.graph import ApiError, MicrosoftApis, retry_after
from tests.msfake import MicrosoftFakes


async def sign_in(apis: MicrosoftApis) -> str:
    return await apis.graph._token()


async def test_client_secret_gets_a_token_for_each_api(
    ms: MicrosoftFakes, apis: MicrosoftApis
) -> None:
    assert ms.identity.audience_of(await apis.graph._token()) == ms.graph.root
    assert ms.identity.audience_of(await apis.arm._token()) == ms.arm.root
    posted = [c for c in ms.identity.calls if c.path.endswith("/oauth2/v2.0/token")]
    assert posted[0].path == f"/{ms.tenant}/oauth2/v2.0/token"
    assert posted[0].body["scope"] == f"{ms.graph.root}/.default"
    assert posted[0].body["client_secret"] == ms.secret
    await apis.graph._token()
    assert len([c for c in ms.identity.calls if c.path.endswith("/token")]) == 2  # cached


async def test_a_certificate_gets_a_token(
    ms: MicrosoftFakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = str(uuid.uuid4())
    monkeypatch.setenv("AZURE_CLIENT_ID", client)
    monkeypatch.setenv("AZURE_CLIENT_CERTIFICATE_PATH", str(ms.client_certificate(client)))
    monkeypatch.delenv("AZURE_CLIENT_SECRET")
    async with MicrosoftApis.from_env() as apis:
        token = await sign_in(apis)
    assert ms.identity.tokens[token].client_id == client
    [posted] = [c for c in ms.identity.calls if c.path.endswith("/token")]
    assert posted.body["client_assertion_type"].endswith("jwt-bearer")
    assert "client_secret" not in posted.body


async def test_a_certificate_the_app_does_not_have_is_refused(
    ms: MicrosoftFakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = str(uuid.uuid4())
    ms.client_certificate(client)
    other = ms.client_certificate(str(uuid.uuid4()))  # a valid cert, of another app
    monkeypatch.setenv("AZURE_CLIENT_ID", client)
    monkeypatch.setenv("AZURE_CLIENT_CERTIFICATE_PATH", str(other))
    monkeypatch.delenv("AZURE_CLIENT_SECRET")
    async with MicrosoftApis.from_env() as apis:
        with pytest.raises(ApiError, match="could not sign in to Microsoft Graph") as raised:
            await sign_in(apis)
    assert raised.value.permanent


async def test_a_wrong_secret_is_a_permanent_failure(
    ms: MicrosoftFakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "not-the-secret")
    async with MicrosoftApis.from_env() as apis:
        with pytest.raises(ApiError, match="AADSTS7000215") as raised:
            await sign_in(apis)
    assert raised.value.permanent
    assert "not-the-secret" not in str(raised.value)


async def test_workload_identity_gets_a_token(
    ms: MicrosoftFakes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, assertion = str(uuid.uuid4()), "eyJ.federated.token-" + uuid.uuid4().hex
    ms.identity.add_app(client, federated=assertion)
    (tmp_path / "token").write_text(assertion)
    monkeypatch.setenv("AZURE_CLIENT_ID", client)
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.delenv("AZURE_CLIENT_SECRET")
    async with MicrosoftApis.from_env() as apis:
        token = await sign_in(apis)
    assert ms.identity.tokens[token].client_id == client


async def test_managed_identity_gets_a_token(
    ms: MicrosoftFakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AZURE_CLIENT_SECRET", "AZURE_TENANT_ID"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{ms.identity.root}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", ms.identity.identity_header)
    async with MicrosoftApis.from_env() as apis:
        token = await sign_in(apis)
    assert ms.identity.audience_of(token) == ms.graph.root
    assert ms.identity.tokens[token].client_id == ms.client_id  # the user-assigned identity


async def test_tls_is_verified_for_real(
    ms: MicrosoftFakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE")  # the system's trust does not know the test CA
    async with MicrosoftApis.from_env() as apis:
        with pytest.raises(ApiError, match="could not sign in") as raised:
            await sign_in(apis)
    assert not raised.value.permanent
    assert not [c for c in ms.identity.calls if c.path.endswith("/token")]


def test_one_credential_is_picked_from_the_environment_never_a_developer_tool(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in (
        "AZURE_TOKEN_CREDENTIALS",
        "AZURE_CLIENT_SECRET",
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "AZURE_FEDERATED_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_CLIENT_ID", str(uuid.uuid4()))
    monkeypatch.setenv("AZURE_TENANT_ID", str(uuid.uuid4()))
    assert type(azure_credential()).__name__ == "ManagedIdentityCredential"
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(tmp_path / "token"))
    assert type(azure_credential()).__name__ == "WorkloadIdentityCredential"
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "s")
    assert type(azure_credential()).__name__ == "EnvironmentCredential"
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "prod")  # the operator asks for the chain
    chain = {type(c).__name__ for c in azure_credential().credentials}
    assert "ManagedIdentityCredential" in chain and "AzureCliCredential" not in chain


def test_clouds_default_to_the_public_cloud_and_refuse_plain_http() -> None:
    assert Clouds.from_env({}) == Clouds(graph=GRAPH_URL, arm=ARM_URL)
    assert Clouds.from_env({}).graph_scope == "https://graph.microsoft.com/.default"
    us_gov = Clouds.from_env(
        {
            "PIM_GRAPH_URL": "https://graph.microsoft.us/",
            "PIM_ARM_URL": "https://management.usgovcloudapi.net",
        }
    )
    assert us_gov.graph_scope == "https://graph.microsoft.us/.default"
    assert us_gov.arm_scope == "https://management.usgovcloudapi.net/.default"
    with pytest.raises(ValueError, match="PIM_GRAPH_URL must be an https:// URL"):
        Clouds.from_env({"PIM_GRAPH_URL": "http://127.0.0.1:1"})


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after("7") == 7.0
    assert retry_after(None) is None and retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (retry_after(later) or 0) <= 30


async def test_a_token_for_graph_does_not_open_arm(ms: MicrosoftFakes, apis: MicrosoftApis) -> None:
    graph_token = await apis.graph._token()
    session, _ = apis.connection()
    async with session.get(
        f"{ms.arm.root}/subscriptions/s1/providers/Microsoft.Authorization/"
        "roleAssignments?api-version=2022-04-01",
        headers={"Authorization": f"Bearer {graph_token}"},
    ) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "InvalidAuthenticationToken"


def test_next_links_to_another_host_are_not_followed(apis: MicrosoftApis) -> None:
    assert apis.graph.url("/v1.0/groups") == apis.graph.base_url + "/v1.0/groups"
    same = apis.graph.base_url + "/v1.0/groups?$skiptoken=2"
    assert apis.graph.url(same) == same
    for elsewhere in ("https://evil.example/v1.0/groups", "http://" + same[len("https://") :]):
        with pytest.raises(ApiError, match="another host") as raised:
            apis.graph.url(elsewhere)
        assert raised.value.permanent
