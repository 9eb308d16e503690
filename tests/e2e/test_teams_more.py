"""More of the Teams loop, as a user sees it: deny with and without a reason, cancel, time-out,
the double click, typed mistakes, strangers, people found through the roster, and requests
without a valid token when the bot is registered (MICROSOFT_APP_ID set).

Everything goes through botbuilder's adapter over HTTP into the real engine (SQLite and
PostgreSQL through `db_url`), and what the bot sends is read back from the fake connector.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select

from bot.config import Settings
from bot.runtime import Runtime
from bot.server import make_app
from bot.teams.adapter import teams_missing
from bot.teams.app import build_teams
from bot.teams.app import mount as mount_teams
from bot.teams.bot import NOT_SET_UP
from cards import teams as cards
from cards import views as v
from handlers.policy import apply_policy
from storage.models import AuditEvent, ConversationRef, OutboxMessage, Principal, ScheduleRequest
from tests.e2e.conftest import POLICY, drained
from tests.e2e.teams_harness import TeamsBot, ask, conv, dump, setup, to, verbs, with_verb
from tests.teamsfake import (
    ADAPTIVE,
    Call,
    FakeConnector,
    card_of,
    invoke_action,
    message,
    personal_conversation_id,
)
from vocab.states import Status

MESSAGE = "application/vnd.microsoft.activity.message"
CARD = "application/vnd.microsoft.card.adaptive"


# --- helpers -----------------------------------------------------------------------------------


async def counts(runtime: Runtime) -> dict[str, int]:
    async with runtime.uow.transaction() as s:
        return {
            m.__name__: await s.scalar(select(func.count()).select_from(m)) or 0
            for m in (ScheduleRequest, AuditEvent, OutboxMessage, Principal, ConversationRef)
        }


async def status_of(runtime: Runtime, request_id: str) -> str | None:
    async with runtime.uow.transaction() as s:
        return await s.scalar(
            select(ScheduleRequest.status).where(ScheduleRequest.short_id == request_id)
        )


async def audit_events(runtime: Runtime, action: str) -> list[AuditEvent]:
    async with runtime.uow.transaction() as s:
        return list(
            (
                await s.scalars(
                    select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
                )
            ).all()
        )


def now_showing(teams: TeamsBot, who: str, call: Call) -> dict[str, Any]:
    """The card of a posted activity as it stands now, after any updates."""
    card = card_of(teams.connector.activity(conv(who), call.activity_id or ""))
    assert card is not None
    return card


# --- deny ----------------------------------------------------------------------------------------


async def test_deny_with_the_reason_typed_into_the_card(teams: TeamsBot):
    await setup(teams, "carol", "bob")
    request_id, card, submitted = await ask(teams, "activate global-admin 1h rotate the keys")
    reason = "not during the change freeze"
    result = await teams.click(
        "carol",
        v.DENY,
        {"request": request_id},
        card_id=card.activity_id or "",
        inputs={cards.REASON_INPUT: reason},
    )
    # The invoke answers with the decided card: outcome and reason shown, buttons gone.
    assert result["statusCode"] == 200 and result["type"] == ADAPTIVE
    assert verbs(result["value"]) == []
    assert "Denied by Carol Chen at " in dump(result["value"])
    assert f": {reason}" in dump(result["value"]) and "Request denied" in dump(result["value"])

    (told,) = await teams.connector.wait_for("post", where=to("bob", "denied your request"))
    assert (
        f"Carol Chen denied your request {request_id} for Global Administrator. "
        f"Reason: {reason}" in dump(told.body)
    )
    # Carol's card and Bob's submitted card are redrawn in place.
    await teams.connector.wait_for("update", count=2)
    for who, call in (("carol", card), ("bob", submitted)):
        shown = now_showing(teams, who, call)
        assert verbs(shown) == [] and "Denied by Carol Chen" in dump(shown)
        assert reason in dump(shown)
    assert await status_of(teams.runtime, request_id) == Status.DENIED
    (denied,) = await audit_events(teams.runtime, "request.denied")
    assert denied.actor == "carol@contoso.com" and denied.details["justification"] == reason


async def test_deny_without_a_reason_is_asked_on_the_card_and_changes_nothing(teams: TeamsBot):
    await setup(teams, "carol", "bob")
    request_id, card, _ = await ask(teams, "activate global-admin 1h rotate the keys")
    await drained(teams.runtime)
    before = dump(now_showing(teams, "carol", card))
    calls_before = len(teams.connector.calls())
    # Teams sends an empty input as "" (or leaves it out); blanks are no reason either.
    for inputs in (None, {cards.REASON_INPUT: ""}, {cards.REASON_INPUT: "   "}):
        result = await teams.click(
            "carol", v.DENY, {"request": request_id}, card_id=card.activity_id or "", inputs=inputs
        )
        # Asked on the card, not in text-command syntax: the same card, buttons and all,
        # with the question under the reason box.
        assert result["statusCode"] == 200 and result["type"] == CARD
        assert "Say why you deny it. Give a reason in the box above" in dump(result["value"])
        assert f"deny {request_id} <reason>" not in dump(result["value"])
        assert [verb for verb, _ in verbs(result["value"])] == [v.APPROVE, v.DENY]
    await drained(teams.runtime)  # a redraw or a message would be outbox work
    assert len(teams.connector.calls()) == calls_before  # nothing sent, nothing updated
    assert dump(now_showing(teams, "carol", card)) == before
    assert await status_of(teams.runtime, request_id) == Status.PENDING_APPROVAL
    # and the card still works
    result = await teams.click(
        "carol", v.APPROVE, {"request": request_id}, card_id=card.activity_id or ""
    )
    assert "Approved by Carol Chen" in dump(result["value"])


async def test_a_role_that_asks_approvers_for_a_reason_gets_it_from_the_card(teams: TeamsBot):
    await setup(teams, "carol", "bob")
    request_id, card, _ = await ask(teams, "activate secret-admin 1h quarterly audit")
    assert "Reason (required)" in dump(card_of(card))
    refused = await teams.click(
        "carol",
        v.APPROVE,
        {"request": request_id},
        card_id=card.activity_id or "",
        inputs={cards.REASON_INPUT: ""},
    )
    # Asked on the card (not in text-command syntax), and the box says it is required.
    assert refused["type"] == CARD
    assert "Secret Administrator asks approvers for a reason" in dump(refused["value"])
    assert f"approve {request_id} <reason>" not in dump(refused["value"])
    (box,) = [e for e in refused["value"]["body"] if e.get("id") == cards.REASON_INPUT]
    assert box["isRequired"] is True and box["errorMessage"]
    assert await status_of(teams.runtime, request_id) == Status.PENDING_APPROVAL
    result = await teams.click(
        "carol",
        v.APPROVE,
        {"request": request_id},
        card_id=card.activity_id or "",
        inputs={cards.REASON_INPUT: "audit ticket OPS-7"},
    )
    assert "Approved by Carol Chen" in dump(result["value"])
    assert "audit ticket OPS-7" in dump(result["value"])
    await teams.connector.wait_for("post", where=to("bob", "approved your request", request_id))


# --- cancel and time-out -------------------------------------------------------------------------


async def test_cancel_from_the_submitted_card_redraws_the_approvers_card(teams: TeamsBot):
    await setup(teams, "carol", "bob")
    request_id, card, submitted = await ask(teams, "activate global-admin 1h rotate the keys")
    result = await teams.click(
        "bob", v.CANCEL, {"request": request_id}, card_id=submitted.activity_id or ""
    )
    assert result["type"] == ADAPTIVE and verbs(result["value"]) == []
    assert "Canceled by Bob Builder" in dump(result["value"])
    assert "Request canceled" in dump(result["value"])

    (update,) = await teams.connector.wait_for(
        "update", where=lambda c: c.activity_id == card.activity_id
    )
    assert update.conversation_id == conv("carol") and update.ok
    shown = now_showing(teams, "carol", card)
    assert verbs(shown) == [] and "Canceled by Bob Builder" in dump(shown)
    await teams.connector.wait_for("update", where=lambda c: c.activity_id == submitted.activity_id)
    assert "Canceled by Bob Builder" in dump(now_showing(teams, "bob", submitted))
    assert await status_of(teams.runtime, request_id) == Status.CANCELED
    # Carol's stale click now only says so, privately.
    late = await teams.click(
        "carol", v.APPROVE, {"request": request_id}, card_id=card.activity_id or ""
    )
    assert late["type"] == MESSAGE
    # (the engine's later view of a canceled request does not say who canceled it)
    assert late["value"].startswith(f"{request_id} is already decided: Canceled")


async def test_a_request_nobody_decides_times_out_and_the_cards_say_so(teams: TeamsBot):
    await setup(teams, "carol", "bob")
    started = time.monotonic()
    request_id, card, submitted = await ask(teams, "activate slow-approval 1h batch is stuck")
    (told,) = await teams.connector.wait_for("post", where=to("bob", "timed out"))
    assert request_id in dump(told.body) and "Slow Approval" in dump(told.body)
    await teams.connector.wait_for("update", where=lambda c: c.activity_id == card.activity_id)
    assert time.monotonic() - started < 6
    shown = now_showing(teams, "carol", card)
    assert verbs(shown) == [] and "nobody decided in time" in dump(shown)
    assert "Request timed out" in dump(shown)
    await teams.connector.wait_for("update", where=lambda c: c.activity_id == submitted.activity_id)
    assert verbs(now_showing(teams, "bob", submitted)) == []
    assert await status_of(teams.runtime, request_id) == Status.TIMED_OUT


# --- the double click ----------------------------------------------------------------------------


async def test_concurrent_clicks_make_exactly_one_decision(teams: TeamsBot):
    await setup(teams, "carol", "bob")
    request_id, card, _ = await ask(teams, "activate global-admin 1h rotate the keys")
    clicks = [
        teams.click("carol", v.APPROVE, {"request": request_id}, card_id=card.activity_id or "")
        for _ in range(6)
    ]
    results = await asyncio.gather(*clicks)
    decided = [r for r in results if r["type"] == ADAPTIVE]
    refused = [r for r in results if r["type"] == MESSAGE]
    assert len(decided) == 1 and len(refused) == 5, results
    assert "Approved by Carol Chen" in dump(decided[0]["value"])
    for r in refused:
        assert r["value"].startswith(f"{request_id} is already decided: Approved by Carol Chen")

    await teams.connector.wait_for("post", where=to("bob", "is active until"))
    await drained(teams.runtime)
    approved = [c for c in teams.connector.calls("post") if to("bob", "approved your request")(c)]
    assert len(approved) == 1
    assert len(await audit_events(teams.runtime, "request.approved")) == 1
    async with teams.runtime.uow.transaction() as s:
        req = await s.scalar(select(ScheduleRequest).where(ScheduleRequest.short_id == request_id))
        assert req is not None and req.status == Status.PROVISIONED
    # Carol's card was redrawn once (by the outbox), to the one outcome.
    updates = [c for c in teams.connector.calls("update") if c.activity_id == card.activity_id]
    assert len(updates) == 1 and "Approved by Carol Chen" in dump(now_showing(teams, "carol", card))


# --- what people type ---------------------------------------------------------------------------


async def test_a_typed_mistake_gets_a_one_line_error_card_and_records_nothing(teams: TeamsBot):
    await setup(teams, "bob")
    await drained(teams.runtime)
    before = await counts(teams.runtime)
    for text, error in (
        ("activate quick 2x", "✗ '2x' is not a duration"),
        ("fly me to the moon", "✗ "),
    ):
        teams.connector.clear()
        resp = await teams.say("bob", text)
        assert resp.status in (200, 201)
        (answer,) = await teams.connector.wait_for(
            "post", where=lambda c: c.conversation_id == conv("bob")
        )
        card = card_of(answer)
        assert card is not None and verbs(card) == []
        first = card["body"][0]["inlines"][0]
        assert first["text"].startswith(error) and "\n" not in first["text"]
        assert first["color"] == "attention"
        assert answer.body["summary"].startswith("✗ ")
        assert answer.body["replyToId"]  # an answer in the chat, not a proactive message
    await drained(teams.runtime)  # anything else would be outbox work
    assert await counts(teams.runtime) == before  # conversation ref updated, not added
    assert len(teams.connector.calls()) == 1


async def test_strangers_are_refused_politely_and_recorded_nowhere(teams: TeamsBot):
    teams.connector.add_member("aad-zed", "Zed Stranger", "zed@elsewhere.com")
    await drained(teams.runtime)
    before = await counts(teams.runtime)
    url = teams.connector.service_url
    for aad in ("aad-zed", "aad-nobody"):  # in the roster with a foreign email; not at all
        teams.connector.clear()
        resp = await teams.post(
            message("activate global-admin 1h let me in", user_aad=aad, service_url=url)
        )
        assert resp.status in (200, 201)
        (answer,) = await teams.connector.wait_for("reply")
        assert answer.body["text"] == NOT_SET_UP
        assert answer.conversation_id == personal_conversation_id(aad)
        resp = await teams.post(
            invoke_action(
                v.APPROVE, {"request": "R-AAAA"}, user_aad=aad, service_url=url, reply_to_id="1"
            )
        )
        assert resp.status == 200
        assert await resp.json() == {"statusCode": 200, "type": MESSAGE, "value": NOT_SET_UP}
    after = await counts(teams.runtime)
    # Only where to answer them is kept (a conversation reference per chat), nothing else.
    assert after == {**before, "ConversationRef": before["ConversationRef"] + 2}
    async with teams.runtime.uow.transaction() as s:
        refs = (
            await s.scalars(
                select(ConversationRef).where(ConversationRef.key.in_(["aad-zed", "aad-nobody"]))
            )
        ).all()
    assert [r.principal_id for r in refs] == [None, None]


async def test_someone_without_a_teams_id_is_found_through_the_roster_and_linked(teams: TeamsBot):
    await setup(teams, "carol")
    resp = await teams.say("dave", "roles")
    assert resp.status in (200, 201)
    (answer,) = await teams.connector.wait_for(
        "post", where=lambda c: c.conversation_id == conv("dave")
    )
    assert "Global Administrator" in dump(answer.body)
    (lookup,) = teams.connector.calls("member")
    assert lookup.path.endswith("/members/29:aad-dave")
    (linked,) = await audit_events(teams.runtime, "principal.teams_id_linked")
    assert linked.target == "dave@contoso.com" and linked.actor == "pim-bot"
    assert linked.details["teams_id"] == "aad-dave"
    async with teams.runtime.uow.transaction() as s:
        dave = await s.scalar(select(Principal).where(Principal.email == "dave@contoso.com"))
        assert dave is not None and dave.teams_id == "aad-dave"
        ref = await s.scalar(select(ConversationRef).where(ConversationRef.key == "aad-dave"))
        assert ref is not None and ref.principal_id == dave.id
    # Remembered: no second lookup, and proactive messages now reach him.
    teams.connector.clear()
    await teams.say("dave", "activate global-admin 1h on call tonight")
    await teams.connector.wait_for("post", where=with_verb("dave", v.CANCEL))
    await teams.connector.wait_for("post", where=with_verb("carol", v.APPROVE))
    assert teams.connector.calls("member") == []
    assert len(await audit_events(teams.runtime, "principal.teams_id_linked")) == 1


# --- authentication -----------------------------------------------------------------------------

APP_ID = "11111111-1111-1111-1111-111111111111"


@dataclass
class Registered:
    connector: FakeConnector
    http: TestClient
    runtime: Runtime


@pytest.fixture
async def registered(db_url: str) -> AsyncIterator[Registered]:
    """pim-bot registered with the Bot Framework: MICROSOFT_APP_ID set, JWTs checked."""
    async with FakeConnector() as connector:
        connector.add_member("aad-dave", "Dave Duty", "dave@contoso.com")
        settings = Settings.from_env(
            {
                "DATABASE_URL": db_url,
                "MICROSOFT_APP_ID": APP_ID,
                "MICROSOFT_APP_PASSWORD": "x",
                "PIM_SWEEP_SECONDS": "1",
            }
        )
        assert teams_missing(settings) is None
        runtime = Runtime.build(settings)
        await runtime.prepare()
        await apply_policy(runtime.uow, runtime.clock, text=POLICY, source="test-policy.yaml")
        bundle = build_teams(settings, runtime.chat("teams"))
        web_app = make_app(runtime)
        mount_teams(web_app, bundle)
        runtime.start_background([bundle.transport])
        await drained(runtime)  # nobody has a Teams conversation yet: all unreachable
        async with TestClient(TestServer(web_app, host="127.0.0.1")) as http:
            try:
                yield Registered(connector=connector, http=http, runtime=runtime)
            finally:
                await runtime.close()


def forged_token(service_url: str) -> str:
    """A well-formed RS256 token for our app id, signed by a key nobody published, from an
    issuer the Bot Framework does not use."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims = {
        "iss": "https://sts.evil.example/",
        "aud": APP_ID,
        "iat": now,
        "nbf": now - 60,
        "exp": now + 3600,
        "serviceurl": service_url,
        "appid": str(uuid.uuid4()),
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "not-published"})


async def test_with_an_app_id_requests_without_a_valid_token_get_401_and_change_nothing(
    registered: Registered,
):
    before = await counts(registered.runtime)
    assert before["ConversationRef"] == 0
    url = registered.connector.service_url
    activities = [
        message("activate quick 10m", user_aad="aad-bob", service_url=url),
        message("roles", user_aad="aad-dave", service_url=url),  # would link him by roster
        invoke_action(
            v.APPROVE, {"request": "R-AAAA"}, user_aad="aad-carol", service_url=url, reply_to_id="1"
        ),
    ]
    tokens = [None, "Bearer garbage", "garbage", f"Bearer {forged_token(url)}"]
    for activity in activities:
        for token in tokens:
            headers = {"Authorization": token} if token else {}
            resp = await registered.http.post("/api/messages", json=activity, headers=headers)
            assert resp.status == 401, (token, await resp.text())
    # A refused request runs no turn; anything else would have queued outbox work.
    await drained(registered.runtime)
    assert registered.connector.calls() == []
    assert await counts(registered.runtime) == before
    async with registered.runtime.uow.transaction() as s:
        dave = await s.scalar(select(Principal).where(Principal.email == "dave@contoso.com"))
        assert dave is not None and dave.teams_id is None


def test_without_an_app_id_teams_is_off_and_says_why(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/pim.db"
    for env in (
        {},
        {"MICROSOFT_APP_ID": ""},
        {"MICROSOFT_APP_ID": "  ", "PIM_TEAMS_ALLOW_UNAUTHENTICATED": "0"},
    ):
        settings = Settings.from_env({"DATABASE_URL": url, "MICROSOFT_APP_PASSWORD": "x", **env})
        why = teams_missing(settings)
        assert why is not None and "MICROSOFT_APP_ID is not set" in why
        assert "PIM_TEAMS_ALLOW_UNAUTHENTICATED=1" in why
    local = Settings.from_env({"DATABASE_URL": url, "PIM_TEAMS_ALLOW_UNAUTHENTICATED": "1"})
    assert teams_missing(local) is None
    registered = Settings.from_env({"DATABASE_URL": url, "MICROSOFT_APP_ID": APP_ID})
    assert teams_missing(registered) is None


# --- a card that is gone ------------------------------------------------------------------------


async def test_a_card_that_is_gone_does_not_keep_the_others_from_being_redrawn(teams: TeamsBot):
    await setup(teams, "carol", "bob")
    request_id, card, submitted = await ask(teams, "activate global-admin 1h rotate the keys")
    await drained(teams.runtime)
    # Carol's card disappeared from Teams (chat deleted, app removed): updating it answers 404.
    del teams.connector.activities[(conv("carol"), card.activity_id or "")]
    result = await teams.click(
        "bob", v.CANCEL, {"request": request_id}, card_id=submitted.activity_id or ""
    )
    assert "Canceled by Bob Builder" in dump(result["value"])
    await teams.connector.wait_for("update", where=lambda c: c.activity_id == submitted.activity_id)
    assert "Canceled by Bob Builder" in dump(now_showing(teams, "bob", submitted))
    await drained(teams.runtime)
    gone = [c for c in teams.connector.calls("update") if c.activity_id == card.activity_id]
    assert [c.status for c in gone] == [404]  # tried once, not retried forever
    async with teams.runtime.uow.transaction() as s:
        redraws = (
            await s.scalars(
                select(OutboxMessage.status).where(
                    OutboxMessage.transport == "teams", OutboxMessage.kind == v.REQUEST_UPDATE
                )
            )
        ).all()
    assert redraws == ["sent"]


@pytest.mark.parametrize(
    ("status", "gap", "attempts"),
    [
        (503, 1.5, 1),  # a failure: the outbox's backoff (2s), one attempt used
        (429, 0.95, 0),  # slow down: Retry-After (1s) honoured, no attempt used
    ],
)
async def test_a_failed_post_is_retried_by_the_outbox_and_delivered_once(
    teams: TeamsBot, status: int, gap: float, attempts: int
):
    await setup(teams, "carol", "bob")
    # The form's submit is answered in the invoke response, and that answer is Bob's card for
    # the request (the form turns into it, in place), so the one proactive POST is Carol's.
    teams.connector.fail_next("post", status=status, retry_after=1 if status == 429 else None)
    result = await teams.click(
        "bob",
        cards.SUBMIT_ACTIVATION,
        {},
        card_id="1",
        inputs={
            cards.ROLE_INPUT: "global-admin",
            cards.DURATION_INPUT: "1h",
            cards.JUSTIFICATION_INPUT: "rotate the keys",
        },
    )
    assert "waiting for approval" in dump(result["value"])
    assert [verb for verb, _ in verbs(result["value"])] == [v.CANCEL]
    (failed,) = await teams.connector.wait_for("post", where=lambda c: c.status == status)
    assert failed.conversation_id == conv("carol")
    # Delivered again later, once.
    (card,) = await teams.connector.wait_for("post", where=with_verb("carol", v.APPROVE))
    assert card.at - failed.at >= gap
    await drained(teams.runtime)
    assert (
        len([c for c in teams.connector.calls("post") if c.conversation_id == conv("carol")]) == 2
    )
    assert not [c for c in teams.connector.calls("post") if c.conversation_id == conv("bob")]
    async with teams.runtime.uow.transaction() as s:
        rows = (
            await s.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.transport == "teams",
                    OutboxMessage.kind.in_([v.APPROVAL_NEEDED, v.SUBMITTED]),
                )
            )
        ).all()
    # Bob's copy is done without a post: his answer was the card.
    assert sorted((m.kind, m.status, m.attempts) for m in rows) == sorted(
        [(v.APPROVAL_NEEDED, "sent", attempts), (v.SUBMITTED, "sent", 0)]
    )
    # and the retried card, and Bob's answer card, are redrawn after the decision
    request_id = next(d["request"] for verb, d in verbs(card_of(card)) if verb == v.APPROVE)
    await teams.click("carol", v.APPROVE, {"request": request_id}, card_id=card.activity_id or "")
    await teams.connector.wait_for(
        "update", where=lambda c: c.activity_id == card.activity_id and c.ok
    )
    assert "Approved by Carol Chen" in dump(now_showing(teams, "carol", card))
    (redraw,) = await teams.connector.wait_for("update", where=lambda c: c.activity_id == "1")
    assert "Approved by Carol Chen" in dump(redraw.body)
