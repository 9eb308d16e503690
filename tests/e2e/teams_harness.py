"""A running pim-bot with Teams on (unauthenticated local mode, PIM_TEAMS_ALLOW_UNAUTHENTICATED, meant for tests),
the real botbuilder adapter over HTTP, the real engine, and a fake Bot Framework connector."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from bot.runtime import Runtime
from cards import views as v
from tests.teamsfake import (
    Call,
    FakeConnector,
    card_of,
    installation_update,
    invoke_action,
    message,
    personal_conversation_id,
)

AAD = {
    "alice": "aad-alice",
    "bob": "aad-bob",
    "carol": "aad-carol",
    "erin": "aad-erin",
    "dave": "aad-dave",
}


@dataclass
class TeamsBot:
    connector: FakeConnector
    http: TestClient
    runtime: Runtime

    async def post(
        self, activity: dict[str, Any], *, headers: dict[str, str] | None = None
    ) -> ClientResponse:
        return await self.http.post("/api/messages", json=activity, headers=headers or {})

    async def install(self, who: str) -> None:
        resp = await self.post(
            installation_update(AAD[who], service_url=self.connector.service_url)
        )
        assert resp.status in (200, 201), await resp.text()

    async def say(self, who: str, text: str) -> ClientResponse:
        return await self.post(
            message(
                text,
                user_aad=AAD[who],
                user_name=who.title(),
                service_url=self.connector.service_url,
            )
        )

    async def click(
        self,
        who: str,
        verb: str,
        data: dict[str, Any],
        *,
        card_id: str,
        inputs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        resp = await self.post(
            invoke_action(
                verb,
                data,
                user_aad=AAD[who],
                service_url=self.connector.service_url,
                reply_to_id=card_id,
                inputs=inputs,
                user_name=who.title(),
            )
        )
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())


# --- what tests do and look for, as a person in Teams ----------------------------------------


def dump(obj: Any) -> str:
    """Everything a person can read in an activity or card (its JSON, unescaped unicode)."""
    return json.dumps(obj, ensure_ascii=False)


def conv(who: str) -> str:
    return personal_conversation_id(AAD[who])


def verbs(card: dict[str, Any] | None) -> list[tuple[str, dict[str, Any]]]:
    """(verb, data) of every Action.Execute anywhere in a card."""
    found: list[tuple[str, dict[str, Any]]] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") == "Action.Execute":
                found.append((node["verb"], node.get("data", {})))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card)
    return found


def to(who: str, *words: str):  # noqa: ANN201 - a wait_for predicate
    return lambda c: (
        c.ok and c.conversation_id == conv(who) and all(w in dump(c.body) for w in words)
    )


def with_verb(who: str, verb: str):  # noqa: ANN201
    return lambda c: (
        c.ok
        and c.conversation_id == conv(who)
        and any(found == verb for found, _ in verbs(card_of(c)))
    )


async def setup(teams: TeamsBot, *people: str) -> None:
    for who in people:
        await teams.install(who)
    await teams.connector.wait_for("post", count=len(people))  # the greetings
    teams.connector.clear()


async def ask(teams: TeamsBot, text: str, *, who: str = "bob") -> tuple[str, Call, Call]:
    """Type an `activate …` that needs Carol's approval. Returns the request id, Carol's
    approval card and the requester's submitted card (both as the connector received them)."""
    resp = await teams.say(who, text)
    assert resp.status in (200, 201), await resp.text()
    (card,) = await teams.connector.wait_for("post", where=with_verb("carol", v.APPROVE))
    (submitted,) = await teams.connector.wait_for("post", where=with_verb(who, v.CANCEL))
    request_id = next(d["request"] for verb, d in verbs(card_of(card)) if verb == v.APPROVE)
    assert verbs(card_of(submitted)) == [(v.CANCEL, {"request": request_id})]
    return request_id, card, submitted
