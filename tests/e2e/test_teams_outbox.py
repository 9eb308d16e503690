"""Teams notices reach a person in the order they happened, also through a 429."""

from __future__ import annotations

from cards import views as v
from tests.e2e.teams_harness import TeamsBot, ask, conv, dump, setup


async def test_active_never_arrives_before_approved_even_after_a_429(teams: TeamsBot):
    await setup(teams, "carol", "bob")
    request_id, card, _ = await ask(teams, "activate global-admin 1h rotate the keys")
    teams.connector.clear()
    # The decision is answered in the invoke response; the next post is Bob's "approved".
    teams.connector.fail_next("post", status=429, retry_after=1)
    await teams.click("carol", v.APPROVE, {"request": request_id}, card_id=card.activity_id or "")
    await teams.connector.wait_for(
        "post", count=2, where=lambda c: c.ok and c.conversation_id == conv("bob")
    )
    to_bob = [c for c in teams.connector.calls("post") if c.conversation_id == conv("bob")]
    assert [
        (c.status, "approved your request" in dump(c.body), "is active until" in dump(c.body))
        for c in to_bob
    ] == [(429, True, False), (201, True, False), (201, False, True)]
    refused, approved, active = to_bob
    assert approved.at - refused.at >= 0.95 and active.at >= approved.at
