"""Notices reach a person in the order they happened, also when Slack says "slow down"."""

from __future__ import annotations

import json

from cards import views as v
from tests.e2e.conftest import SlackBot, drained
from tests.e2e.slack_harness import ask


def said(call) -> str:
    return json.dumps(call.args, ensure_ascii=False)


async def test_access_ended_never_arrives_before_approved_even_after_a_429(slack: SlackBot):
    answer = await ask(slack, "activate global-admin 2h rotate keys")
    request_id = answer.split("Request ")[1].split(" ")[0]
    await slack.fake.wait_for("chat.postMessage", count=4)  # three cards, Bob's "submitted"
    carol_card = slack.fake.messages_to("U0CAROL")[0].response
    slack.fake.clear()
    # Slack refuses the first post after the decision: Bob's "approved".
    slack.fake.fail_next("chat.postMessage", status=429, retry_after=1)
    resp = await slack.click("U0CAROL", v.APPROVE, request_id, posted=carol_card)
    assert resp.status == 200
    await slack.fake.wait_for(
        "chat.postMessage",
        count=2,
        where=lambda c: c.ok and c.args["channel"] == "U0BOB",
    )
    await drained(slack.runtime)  # everything queued has gone out: anything out of order shows
    to_bob = [c for c in slack.fake.calls("chat.postMessage") if c.args["channel"] == "U0BOB"]
    assert [
        (c.status, "approved your request" in said(c), "is active until" in said(c)) for c in to_bob
    ] == [(429, True, False), (200, True, False), (200, False, True)]
    refused, approved, active = to_bob
    assert approved.at - refused.at >= 0.95  # Retry-After honoured
    assert active.at >= approved.at  # "active" waited for "approved", retry and all
    # the cards were redrawn meanwhile: a 429 on one DM pauses nobody else
    updates = slack.fake.calls("chat.update")
    assert len(updates) == 4 and all(u.at < approved.at for u in updates)
