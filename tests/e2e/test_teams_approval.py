"""Bob asks in Teams, Carol gets an Adaptive Card, Carol clicks, every card shows it, Bob is told."""

from __future__ import annotations

import json

from cards import teams as cards
from cards import views as v
from tests.e2e.teams_harness import AAD, TeamsBot, verbs
from tests.teamsfake import card_of, personal_conversation_id


def text_of(card: dict) -> str:
    return json.dumps(card, ensure_ascii=False)


async def test_whole_loop_in_teams(teams: TeamsBot):
    for who in ("carol", "bob"):
        await teams.install(who)
    await teams.connector.wait_for("post", count=2)  # the greetings
    teams.connector.clear()

    resp = await teams.say("bob", "activate global-admin 2h rotate the keys")
    assert resp.status in (200, 201)
    carol_conv = personal_conversation_id(AAD["carol"])
    bob_conv = personal_conversation_id(AAD["bob"])
    (answer,) = await teams.connector.wait_for(
        "post",
        where=lambda c: c.conversation_id == bob_conv and "waiting for approval" in text_of(c.body),
    )
    (card_call,) = await teams.connector.wait_for(
        "post", where=lambda c: c.conversation_id == carol_conv
    )
    card = card_of(card_call)
    request_id = next(d["request"] for verb, d in verbs(card) if verb == v.APPROVE)
    assert [verb for verb, _ in verbs(card)] == [v.APPROVE, v.DENY]
    assert "Bob Builder" in text_of(card) and "rotate the keys" in text_of(card)

    result = await teams.click(
        "carol", v.APPROVE, {"request": request_id}, card_id=card_call.activity_id
    )
    assert (
        result["statusCode"] == 200 and result["type"] == "application/vnd.microsoft.card.adaptive"
    )
    assert verbs(result["value"]) == []
    assert "Approved by Carol Chen" in text_of(result["value"])

    # the posted card is updated in place, and Bob is told
    await teams.connector.wait_for("update", where=lambda c: c.activity_id == card_call.activity_id)
    updated = teams.connector.activity(carol_conv, card_call.activity_id)
    assert "Approved by Carol Chen" in text_of(updated)
    told = await teams.connector.wait_for(
        "post",
        where=lambda c: (
            c.conversation_id == bob_conv and "approved your request" in text_of(c.body)
        ),
    )
    assert told


async def test_non_approver_click_is_refused_privately(teams: TeamsBot):
    for who in ("carol", "bob", "alice"):
        await teams.install(who)
    await teams.say("bob", "activate global-admin 1h keys")
    carol_conv = personal_conversation_id(AAD["carol"])
    (card_call,) = await teams.connector.wait_for(
        "post", where=lambda c: c.conversation_id == carol_conv and card_of(c) is not None
    )
    request_id = next(d["request"] for verb, d in verbs(card_of(card_call)) if verb == v.APPROVE)
    result = await teams.click(
        "alice", v.APPROVE, {"request": request_id}, card_id=card_call.activity_id
    )
    assert result["type"] == "application/vnd.microsoft.activity.message"
    assert "not an approver" in result["value"]
    result = await teams.click(
        "bob", v.APPROVE, {"request": request_id}, card_id=card_call.activity_id
    )
    assert result["value"] == f"You cannot approve your own request {request_id}."


async def test_activation_form_round_trip(teams: TeamsBot):
    await teams.install("bob")
    await teams.say("bob", "activate")
    bob_conv = personal_conversation_id(AAD["bob"])
    (form_call,) = await teams.connector.wait_for(
        "post",
        where=lambda c: (
            c.conversation_id == bob_conv
            and card_of(c) is not None
            and cards.SUBMIT_ACTIVATION in text_of(c.body)
        ),
    )
    bad = await teams.click(
        "bob",
        cards.SUBMIT_ACTIVATION,
        {},
        card_id=form_call.activity_id,
        inputs={"role": "quick", "duration": "2x"},
    )
    assert "not a duration" in text_of(bad["value"])
    ok = await teams.click(
        "bob",
        cards.SUBMIT_ACTIVATION,
        {},
        card_id=form_call.activity_id,
        inputs={"role": "quick", "duration": "10m"},
    )
    assert "Quick Role" in text_of(ok["value"])
    reply = await teams.say("bob", "roles")
    assert reply.status in (200, 201)
    roles = await teams.connector.wait_for(
        "post",
        where=lambda c: (
            c.conversation_id == bob_conv
            and "ACTIVE" in text_of(c.body).upper()
            and "Quick Role" in text_of(c.body)
        ),
    )
    assert roles
