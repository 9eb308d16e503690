"""Fixtures for the grant providers: the Microsoft fakes over HTTPS with a test CA, the
environment production reads pointed at them, and the real clients built from it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from bot.providers.graph import MicrosoftApis
from tests.msfake import MicrosoftFakes

# azure-identity variables a developer's shell may carry; tests set only their own.
AZURE_VARIABLES = [
    name for name in os.environ if name.startswith(("AZURE_", "PIM_GRAPH", "PIM_ARM"))
] + [
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
]


@pytest.fixture
async def ms(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MicrosoftFakes]:
    for name in AZURE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    async with MicrosoftFakes() as fakes:
        for name, value in fakes.env().items():
            monkeypatch.setenv(name, value)
        yield fakes


@pytest.fixture
async def apis(ms: MicrosoftFakes) -> AsyncIterator[MicrosoftApis]:
    async with MicrosoftApis.from_env(timeout=2.0) as built:
        yield built
