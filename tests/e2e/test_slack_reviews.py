"""An access review in Slack: Carol and Erin get their cards by DM, Carol approves with a click,
Erin denies through the reason modal, every copy of both cards shows each decision, a late
click is refused, and at the end Dave is told why his access went and Alice gets the summary."""

from __future__ import annotations

import json

from cards import slack as cards
from cards import views as v
from handlers.policy import apply_policy
from handlers.reviews.apply import end_review
from handlers.reviews.open import start_review
from tests.e2e.conftest import POLICY, SlackBot
from tests.slackfake import dm_id

REVIEW = """
reviews:
  - id: ga-review
    name: Global admin review
    roles: [global-admin]
    assignments: eligible
    reviewers: approvers
    recurrence: once
    start: 2099-01-04
    duration: 14d
    on_no_response: keep
"""


def texts(message: dict) -> str:
    return json.dumps(message, ensure_ascii=False)


def review_buttons(message: dict) -> dict[str, list[str]]:
    """item id -> the review buttons it has."""
    found: dict[str, list[str]] = {}
    for block in message.get("blocks", []):
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            if element["action_id"] in v.REVIEW_VERBS:
                found.setdefault(element["value"], []).append(element["action_id"])
    return found


def item_of(message: dict, name: str) -> str:
    """The id of the item about `name` on a card."""
    blocks = message["blocks"]
    for index, block in enumerate(blocks):
        if block["type"] == "section" and name in block["text"]["text"]:
            return blocks[index + 1]["elements"][0]["value"]
    raise AssertionError(f"no item for {name}")


async def open_review(slack: SlackBot) -> tuple[dict, dict]:
    runtime = slack.runtime
    await apply_policy(runtime.uow, runtime.clock, text=POLICY + REVIEW, source="review.yaml")
    said = await start_review(runtime.uow, runtime.clock, actor="cli:ops", review_id="ga-review")
    assert said.startswith("Opened Global admin review (ga-review) instance 1: 2 items")
    runtime.poke()
    cards_to = {}
    for user in ("U0CAROL", "U0ERIN"):
        (card,) = await slack.fake.wait_for(
            "chat.postMessage",
            where=lambda c, u=user: (
                c.args["channel"] == u and "Please review access" in texts(c.args)
            ),
        )
        cards_to[user] = card
    return cards_to["U0CAROL"], cards_to["U0ERIN"]


async def test_review_cards_click_modal_redraw_and_end(slack: SlackBot):
    carol, erin = await open_review(slack)
    for card in (carol, erin):
        assert set(map(tuple, review_buttons(card.args).values())) == {tuple(v.REVIEW_VERBS)}
        assert "Bob Builder" in texts(card.args) and "Dave Duty" in texts(card.args)
        assert "no activation in 30 days" in texts(card.args)
    assert not [
        c
        for c in slack.fake.calls("chat.postMessage")
        if c.args["channel"] in ("U0BOB", "U0DAVE") and "review" in texts(c.args)
    ]
    bob, dave = item_of(carol.args, "Bob Builder"), item_of(carol.args, "Dave Duty")

    # Carol approves Bob with one click: she is told, and both cards are redrawn.
    resp = await slack.click(
        "U0CAROL", v.REVIEW_APPROVE, bob, posted=carol.response, token="carol-approve"
    )
    assert resp.status == 200
    (answer,) = await slack.replies("carol-approve")
    assert answer["text"].startswith(f"Recorded: item {bob} approved.")
    updates = await slack.fake.wait_for("chat.update", count=2)
    assert {c.args["channel"] for c in updates} == {dm_id("U0CAROL"), dm_id("U0ERIN")}
    for c in updates:
        assert "Approved by Carol Chen" in texts(c.args)
        assert list(review_buttons(c.args)) == [dave]  # Bob's item has no buttons left

    # Erin denies Dave: the modal asks why; an empty reason is refused in the modal.
    slack.fake.clear()
    await slack.click("U0ERIN", v.REVIEW_DENY, dave, posted=erin.response)
    (opened,) = await slack.fake.wait_for("views.open")
    modal = opened.args["view"]
    assert modal["callback_id"] == cards.REVIEW_MODAL and "Dave Duty" in texts(modal)
    field = {
        cards.REVIEW_REASON_BLOCK: {
            cards.REVIEW_REASON_ACTION: {"type": "plain_text_input", "value": ""}
        }
    }
    empty = await slack.submit(
        "U0ERIN", cards.REVIEW_MODAL, field, private_metadata=modal["private_metadata"]
    )
    body = await empty.json()
    assert body["response_action"] == "errors" and cards.REVIEW_REASON_BLOCK in body["errors"]
    field[cards.REVIEW_REASON_BLOCK][cards.REVIEW_REASON_ACTION]["value"] = "moved <b>to</b> sales"
    resp = await slack.submit(
        "U0ERIN", cards.REVIEW_MODAL, field, private_metadata=modal["private_metadata"]
    )
    assert resp.status == 200
    updates = await slack.fake.wait_for("chat.update", count=2)
    for c in updates:
        assert "Denied by Erin Ersatz" in texts(c.args)
        assert "moved &lt;b&gt;to&lt;/b&gt; sales" in texts(c.args)
        assert review_buttons(c.args) == {}

    # A late click on a decided item is refused privately; nothing changes.
    resp = await slack.click("U0CAROL", v.REVIEW_DONT_KNOW, dave, token="late")
    (late,) = await slack.replies("late")
    assert "is already decided: Denied by Erin Ersatz" in late["text"]

    # `/pim reviews` lists Carol's open review.
    resp = await slack.command("U0CAROL", "reviews", token="list")
    (listed,) = await slack.replies("list")
    assert "Global admin review" in texts(listed) and "2 of 2 decided" in texts(listed)

    # The end: Dave's eligibility goes, he is told why; Alice gets the summary.
    slack.fake.clear()
    line = await end_review(
        slack.runtime.uow, slack.runtime.clock, actor="cli:ops", review_id="ga-review"
    )
    assert "approved 1, denied 1" in line and "applied: 1 removed" in line
    slack.runtime.poke()
    (told,) = await slack.fake.wait_for(
        "chat.postMessage", where=lambda c: c.args["channel"] == "U0DAVE"
    )
    assert "removed by the access review" in texts(told.args)
    assert "Erin Ersatz denied it (moved &lt;b&gt;to&lt;/b&gt; sales)" in texts(told.args)
    (summary,) = await slack.fake.wait_for(
        "chat.postMessage", where=lambda c: c.args["channel"] == "U0ALICE"
    )
    assert "Access review ended: Global admin review #1" in texts(summary.args)
    assert "Applied: 1 removed" in texts(summary.args)
    closed = await slack.fake.wait_for("chat.update", count=2)
    assert all("closed" in texts(c.args) and review_buttons(c.args) == {} for c in closed)


async def test_a_reviewer_cannot_review_their_own_access_in_slack(slack: SlackBot):
    selfish = POLICY.replace(
        "approvers: [carol@contoso.com, erin@contoso.com],",
        "approvers: [carol@contoso.com, erin@contoso.com, dave@contoso.com],",
    )
    await apply_policy(slack.runtime.uow, slack.runtime.clock, text=selfish + REVIEW)
    await start_review(
        slack.runtime.uow, slack.runtime.clock, actor="cli:ops", review_id="ga-review"
    )
    slack.runtime.poke()
    (card,) = await slack.fake.wait_for(
        "chat.postMessage",
        where=lambda c: c.args["channel"] == "U0DAVE" and "Please review access" in texts(c.args),
    )
    assert "Bob Builder" in texts(card.args)
    assert "Dave Duty" not in texts(card.args)  # his own eligibility is not on his card
    (carols,) = await slack.fake.wait_for(
        "chat.postMessage",
        where=lambda c: c.args["channel"] == "U0CAROL" and "Please review access" in texts(c.args),
    )
    own = item_of(carols.args, "Dave Duty")
    await slack.click("U0DAVE", v.REVIEW_APPROVE, own, token="own")
    (refused,) = await slack.replies("own")
    assert "You cannot review your own access." in refused["text"]
