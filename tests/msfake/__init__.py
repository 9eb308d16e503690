"""Loopback HTTPS fakes of the Microsoft identity platform, Microsoft Graph and Azure Resource
Manager, with a throwaway test CA (trustme).

    async with MicrosoftFakes() as ms:
        monkeypatch.setattr(os, "environ", {**os.environ, **ms.env()})   # or setenv each
        async with MicrosoftApis.from_env() as apis: ...

`ms.env()` holds what production reads: AZURE_* for azure-identity (authority host pointing at
the fake login), PIM_GRAPH_URL / PIM_ARM_URL, and SSL_CERT_FILE naming the test CA so TLS is
verified for real, only in the test that sets it.
"""

from __future__ import annotations

import ssl
import tempfile
import uuid
from pathlib import Path

import trustme

from .arm import FakeARM
from .base import Call
from .graph import FakeGraph
from .identity import FakeIdentity

__all__ = ["Call", "FakeARM", "FakeGraph", "FakeIdentity", "MicrosoftFakes"]


class MicrosoftFakes:
    def __init__(self, *, page_size: int = 100) -> None:
        self.ca = trustme.CA()
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
        self._dir = tempfile.TemporaryDirectory(prefix="msfake-")
        self.ca_file = Path(self._dir.name) / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.tenant = str(uuid.uuid4())
        self.client_id, self.secret = str(uuid.uuid4()), "fake-secret-" + uuid.uuid4().hex
        self.identity = FakeIdentity(tenant=self.tenant, server_ssl=server)
        self.identity.add_app(self.client_id, secret=self.secret)
        self.graph = FakeGraph(identity=self.identity, page_size=page_size, server_ssl=server)
        self.arm = FakeARM(identity=self.identity, page_size=page_size, server_ssl=server)

    def client_ssl(self) -> ssl.SSLContext:
        """A client context trusting only the test CA."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def client_certificate(self, client_id: str) -> Path:
        """Register an app that signs in with a certificate; the PEM (key and certificate)
        azure-identity's AZURE_CLIENT_CERTIFICATE_PATH wants."""
        issued = self.ca.issue_cert(f"{client_id}.apps.test", key_type=trustme.KeyType.RSA)
        path = Path(self._dir.name) / f"{client_id}.pem"
        path.write_bytes(issued.private_key_and_cert_chain_pem.bytes())
        self.identity.add_app(client_id, certificate_pem=issued.cert_chain_pems[0].bytes())
        return path

    def env(self) -> dict[str, str]:
        """Client-secret sign-in and the fakes' URLs, as environment variables."""
        return {
            "AZURE_TENANT_ID": self.tenant,
            "AZURE_CLIENT_ID": self.client_id,
            "AZURE_CLIENT_SECRET": self.secret,
            "AZURE_AUTHORITY_HOST": self.identity.root,
            "PIM_GRAPH_URL": self.graph.root,
            "PIM_ARM_URL": self.arm.root,
            "SSL_CERT_FILE": str(self.ca_file),
        }

    async def __aenter__(self) -> MicrosoftFakes:
        await self.identity.start()
        await self.graph.start()
        await self.arm.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for fake in (self.arm, self.graph, self.identity):
            await fake.stop()
        self._dir.cleanup()
