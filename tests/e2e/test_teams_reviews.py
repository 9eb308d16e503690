"""An access review in Teams through the real botbuilder adapter: Carol's review card arrives
proactively, each Decide carries its item and that item's reason, the invoke answers with the
redrawn card, the posted card is updated in place, a deny without reason and a late click are
refused, and at the end Dave hears why his access went and Alice gets the summary."""

from __future__ import annotations

import json

from cards import teams as cards
from cards import views as v
from handlers.policy import apply_policy
from handlers.reviews.apply import end_review
from handlers.reviews.open import start_review
from tests.e2e.conftest import POLICY
from tests.e2e.teams_harness import TeamsBot, conv, setup, to, verbs
from tests.e2e.test_slack_reviews import REVIEW
from tests.teamsfake import card_of

MESSAGE = "application/vnd.microsoft.activity.message"


def text_of(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)


def items_on(card: dict | None) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for verb, data in verbs(card):
        if verb in v.REVIEW_VERBS:
            found.setdefault(data["item"], []).append(verb)
    return found


def item_about(card: dict, name: str) -> str:
    for container in card["body"]:
        if container.get("type") == "Container" and name in text_of(container["items"][0]):
            return next(d["item"] for _, d in verbs(container))
    raise AssertionError(f"no item for {name}")


async def test_review_in_teams_decide_redraw_refuse_and_end(teams: TeamsBot):
    await setup(teams, "carol", "dave", "alice")
    await teams.say("dave", "roles")  # Dave is found by his email and linked on his first turn
    await teams.connector.wait_for("post", where=to("dave"))
    teams.connector.clear()
    runtime = teams.runtime
    await apply_policy(runtime.uow, runtime.clock, text=POLICY + REVIEW, source="review.yaml")
    await start_review(runtime.uow, runtime.clock, actor="cli:ops", review_id="ga-review")
    runtime.poke()
    (posted,) = await teams.connector.wait_for("post", where=to("carol", "Please review access"))
    card = card_of(posted)
    assert card is not None and len(items_on(card)) == 2
    assert all(found == list(v.REVIEW_VERBS) for found in items_on(card).values())
    bob, dave = item_about(card, "Bob Builder"), item_about(card, "Dave Duty")
    assert cards.review_reason_input(bob) in text_of(card)

    result = await teams.click(
        "carol",
        v.REVIEW_APPROVE,
        {"item": bob},
        inputs={cards.review_reason_input(bob): "on call"},
        card_id=posted.activity_id,
    )
    assert (
        result["statusCode"] == 200 and result["type"] == "application/vnd.microsoft.card.adaptive"
    )
    assert "Approved by Carol Chen at" in text_of(result["value"])
    assert "on call" in text_of(result["value"])
    assert list(items_on(result["value"])) == [dave]
    await teams.connector.wait_for("update", where=lambda c: c.activity_id == posted.activity_id)
    redrawn = teams.connector.activity(conv("carol"), posted.activity_id)
    assert "Approved by Carol Chen" in text_of(redrawn)

    refused = await teams.click("carol", v.REVIEW_DENY, {"item": dave}, card_id=posted.activity_id)
    assert refused["type"] == MESSAGE and "Say why you deny it" in refused["value"]
    denied = await teams.click(
        "carol",
        v.REVIEW_DENY,
        {"item": dave},
        inputs={cards.review_reason_input(dave): "left the team"},
        card_id=posted.activity_id,
    )
    assert "Denied by Carol Chen" in text_of(denied["value"]) and items_on(denied["value"]) == {}
    late = await teams.click("carol", v.REVIEW_APPROVE, {"item": dave}, card_id=posted.activity_id)
    assert late["type"] == MESSAGE and "is already decided: Denied by Carol Chen" in late["value"]
    odd = await teams.click(
        "carol", v.REVIEW_APPROVE, {"item": "12; drop"}, card_id=posted.activity_id
    )
    assert odd["type"] == MESSAGE and "not known" in odd["value"]

    resp = await teams.say("carol", "reviews")
    assert resp.status in (200, 201)
    await teams.connector.wait_for(
        "post", where=to("carol", "Your access reviews", "2 of 2 decided")
    )

    await end_review(runtime.uow, runtime.clock, actor="cli:ops", review_id="ga-review")
    runtime.poke()
    (told,) = await teams.connector.wait_for(
        "post", where=to("dave", "removed by the access review")
    )
    assert "Carol Chen denied it (left the team)" in text_of(told.body)
    await teams.connector.wait_for("post", where=to("alice", "Access review ended"))
