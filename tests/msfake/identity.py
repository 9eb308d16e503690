"""A fake Microsoft identity platform: the v2.0 token endpoint (client secret, certificate and
federated assertions), the discovery documents MSAL reads, and an App Service managed
identity endpoint. Tokens it issues name their audience, which the fake APIs check."""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .base import CALL, HttpsFake

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class App:
    client_id: str
    secret: str | None = None
    certificate: x509.Certificate | None = None
    federated: str | None = None  # the one workload identity assertion it accepts


@dataclass
class Token:
    client_id: str
    audience: str  # the resource's origin, e.g. https://127.0.0.1:PORT
    expires: float


def _b64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _refuse(status: int, error: str, description: str) -> web.Response:
    return web.json_response(
        {
            "error": error,
            "error_description": description,
            "error_codes": [int(description[6:].split(":")[0])],
        },
        status=status,
    )


class FakeIdentity(HttpsFake):
    name = "login"

    def __init__(self, *, tenant: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.tenant = tenant
        self.apps: dict[str, App] = {}
        self.tokens: dict[str, Token] = {}
        self.identity_header = secrets.token_hex(8)  # App Service's X-IDENTITY-HEADER
        self.managed_client_id: str | None = None

    def add_app(
        self,
        client_id: str,
        *,
        secret: str | None = None,
        certificate_pem: bytes | None = None,
        federated: str | None = None,
    ) -> App:
        cert = x509.load_pem_x509_certificate(certificate_pem) if certificate_pem else None
        self.apps[client_id] = App(client_id, secret, cert, federated)
        return self.apps[client_id]

    def audience_of(self, token: str) -> str | None:
        issued = self.tokens.get(token)
        if issued is None or issued.expires < time.time():
            return None
        return issued.audience

    def issued(self, audience: str | None = None) -> list[Token]:
        return [t for t in self.tokens.values() if audience is None or t.audience == audience]

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        app.router.add_get("/common/discovery/instance", self._instance)
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._openid)
        app.router.add_get("/msi/token", self._managed_identity)

    # -- endpoints ---------------------------------------------------------------------------
    def _issue(self, client_id: str, scope: str) -> tuple[str, int]:
        parts = urlsplit(scope)
        token = "fake." + secrets.token_urlsafe(24)
        self.tokens[token] = Token(
            client_id, f"{parts.scheme}://{parts.netloc}", time.time() + 3600
        )
        return token, 3599

    async def _token(self, request: web.Request) -> web.Response:
        form: dict[str, Any] = request[CALL].body or {}
        if request.match_info["tenant"] != self.tenant:
            return _refuse(
                400,
                "invalid_request",
                "AADSTS900023: Specified tenant identifier "
                "is neither a valid DNS name, nor a valid external domain.",
            )
        if form.get("grant_type") != "client_credentials":
            return _refuse(400, "unsupported_grant_type", "AADSTS70003: unsupported grant")
        app = self.apps.get(str(form.get("client_id")))
        if app is None:
            return _refuse(
                400, "unauthorized_client", "AADSTS700016: Application not found in the directory."
            )
        url = f"{self.root}/{self.tenant}/oauth2/v2.0/token"
        if not self._authenticated(app, form, url):
            return _refuse(
                401, "invalid_client", "AADSTS7000215: Invalid client secret or assertion provided."
            )
        token, expires_in = self._issue(app.client_id, str(form.get("scope", "")))
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": expires_in,
                "ext_expires_in": expires_in,
                "access_token": token,
            }
        )

    def _authenticated(self, app: App, form: dict[str, Any], url: str) -> bool:
        if "client_secret" in form:
            return app.secret is not None and secrets.compare_digest(
                str(form["client_secret"]), app.secret
            )
        if form.get("client_assertion_type") != JWT_BEARER:
            return False
        assertion = str(form.get("client_assertion", ""))
        if app.federated is not None and assertion == app.federated:
            return True
        return app.certificate is not None and self._signed_by(app, assertion, url)

    @staticmethod
    def _signed_by(app: App, assertion: str, url: str) -> bool:
        """A client assertion JWT (PS256 or RS256) signed by the app's certificate, for this
        token endpoint, not expired."""
        assert app.certificate is not None
        try:
            head, body, signature = assertion.split(".")
            header, claims = json.loads(_b64(head)), json.loads(_b64(body))
        except ValueError:
            return False
        cert = app.certificate
        if header.get("alg") == "PS256":
            thumb = base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA256())).decode()
            pad: padding.AsymmetricPadding = padding.PSS(
                mgf=padding.MGF1(hashes.SHA256()), salt_length=32
            )
            ok_thumb = header.get("x5t#S256") == thumb
        else:
            thumb = base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA1())).decode()
            pad, ok_thumb = padding.PKCS1v15(), header.get("x5t") == thumb
        key = cert.public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        try:
            key.verify(_b64(signature), f"{head}.{body}".encode(), pad, hashes.SHA256())
        except InvalidSignature:
            return False
        return (
            ok_thumb
            and claims.get("aud") == url
            and claims.get("iss") == app.client_id
            and claims.get("sub") == app.client_id
            and claims.get("exp", 0) > time.time()
        )

    async def _instance(self, request: web.Request) -> web.Response:
        host = urlsplit(self.root).netloc
        return web.json_response(
            {
                "tenant_discovery_endpoint": f"{self.root}/{self.tenant}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [
                    {"preferred_network": host, "preferred_cache": host, "aliases": [host]}
                ],
            }
        )

    async def _openid(self, request: web.Request) -> web.Response:
        base = f"{self.root}/{request.match_info['tenant']}"
        return web.json_response(
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "issuer": f"{base}/v2.0",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            }
        )

    async def _managed_identity(self, request: web.Request) -> web.Response:
        if request.headers.get("X-IDENTITY-HEADER") != self.identity_header:
            return web.json_response({"error": "unauthorized"}, status=401)
        resource = request.query.get("resource", "")
        client = request.query.get("client_id") or self.managed_client_id or "managed"
        token, expires_in = self._issue(client, resource + "/.default")
        return web.json_response(
            {
                "access_token": token,
                "token_type": "Bearer",
                "resource": resource,
                "expires_on": str(int(time.time()) + expires_in),
            }
        )
