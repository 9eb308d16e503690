"""A running pim-bot with Teams on (unauthenticated local mode, PIM_TEAMS_ALLOW_UNAUTHENTICATED, meant for tests),
the real botbuilder adapter over HTTP, the real engine, and a fake Bot Framework connector."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from bot.runtime import Runtime
from tests.teamsfake import FakeConnector, installation_update, invoke_action, message

AAD = {"alice": "aad-alice", "bob": "aad-bob", "carol": "aad-carol", "erin": "aad-erin",
       "dave": "aad-dave"}


@dataclass
class TeamsBot:
    connector: FakeConnector
    http: TestClient
    runtime: Runtime

    async def post(self, activity: dict[str, Any], *,
                   headers: dict[str, str] | None = None) -> ClientResponse:
        return await self.http.post("/api/messages", json=activity, headers=headers or {})

    async def install(self, who: str) -> None:
        resp = await self.post(installation_update(AAD[who], service_url=self.connector.service_url))
        assert resp.status in (200, 201), await resp.text()

    async def say(self, who: str, text: str) -> ClientResponse:
        return await self.post(message(text, user_aad=AAD[who], user_name=who.title(),
                                       service_url=self.connector.service_url))

    async def click(self, who: str, verb: str, data: dict[str, Any], *, card_id: str,
                    inputs: dict[str, Any] | None = None) -> dict[str, Any]:
        resp = await self.post(invoke_action(verb, data, user_aad=AAD[who],
                                             service_url=self.connector.service_url,
                                             reply_to_id=card_id, inputs=inputs,
                                             user_name=who.title()))
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())
