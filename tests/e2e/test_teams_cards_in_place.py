"""What Teams showed in the real client (issue 12, items 1-5), through the real botbuilder
adapter: one card per request, updated in place; the approvals list keeps its other rows;
required inputs are checked on the card; durations echoed as typed; cards an approver
missed arrive when they first talk to the bot."""

from __future__ import annotations

from cards import teams as cards
from cards import views as v
from tests.e2e.conftest import drained
from tests.e2e.teams_harness import TeamsBot, conv, dump, setup, to, verbs, with_verb
from tests.teamsfake import card_of

CARD = "application/vnd.microsoft.card.adaptive"


def inputs_of(card: dict) -> dict[str, dict]:
    found: dict[str, dict] = {}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if str(node.get("type", "")).startswith("Input."):
                found[node["id"]] = node
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card)
    return found


async def test_one_card_per_request_updated_in_place(teams: TeamsBot):
    await setup(teams, "carol", "bob")
    await teams.say("bob", "activate global-admin 2h rotate the keys")
    (approver,) = await teams.connector.wait_for("post", where=with_verb("carol", v.APPROVE))
    request_id = verbs(card_of(approver))[0][1]["request"]
    await drained(teams.runtime)
    to_bob = [c for c in teams.connector.calls("post") if c.conversation_id == conv("bob")]
    (mine,) = [c for c in to_bob if request_id in dump(c.body)]  # one card, not two
    assert verbs(card_of(mine)) == [(v.CANCEL, {"request": request_id})]
    assert "waiting for approval" in dump(mine.body)

    await teams.click(
        "carol", v.APPROVE, {"request": request_id}, card_id=approver.activity_id or ""
    )
    await teams.connector.wait_for("update", where=lambda c: c.activity_id == mine.activity_id)
    now = card_of(teams.connector.activity(conv("bob"), mine.activity_id or ""))
    assert verbs(now) == [] and "Approved by Carol Chen" in dump(now)


async def test_deciding_from_the_approvals_list_keeps_the_other_rows(teams: TeamsBot):
    await setup(teams, "carol", "bob")
    await teams.say("bob", "activate global-admin 1h keys")
    await teams.say("bob", "activate slow-approval 1h audit")
    await teams.connector.wait_for("post", where=with_verb("carol", v.APPROVE), count=2)
    teams.connector.clear()
    await teams.say("carol", "approvals")
    (listed,) = await teams.connector.wait_for("post", where=to("carol", "Requests you can decide"))
    card = card_of(listed)
    approve = [d for verb, d in verbs(card) if verb == v.APPROVE]
    ids = [d["request"] for d in approve]
    assert len(ids) == 2 and approve[0][cards.SHOWN_INPUT].split(",") == ids

    result = await teams.click("carol", v.APPROVE, approve[0], card_id=listed.activity_id or "")
    assert result["type"] == CARD
    after = result["value"]
    assert "Requests you can decide" in dump(after)
    assert "Approved by Carol Chen" in dump(after)  # that row shows its outcome
    # ... and the other request is still there, still to decide
    assert [d["request"] for verb, d in verbs(after) if verb == v.APPROVE] == [ids[1]]


async def test_required_inputs_are_checked_on_the_card(teams: TeamsBot):
    await setup(teams, "carol", "bob")
    await teams.say("bob", "activate secret-admin 1h quarterly audit")
    (approver,) = await teams.connector.wait_for("post", where=with_verb("carol", v.APPROVE))
    box = inputs_of(card_of(approver))[cards.REASON_INPUT]
    assert box["isRequired"] is True and box["errorMessage"]

    # The activation form opened for a role that requires a justification marks it required.
    form = await teams.click("bob", v.ACTIVATE, {"role": "global-admin"}, card_id="x")
    fields = inputs_of(form["value"])
    assert fields[cards.JUSTIFICATION_INPUT]["isRequired"] is True
    assert fields[cards.JUSTIFICATION_INPUT]["errorMessage"]
    assert not fields[cards.TICKET_INPUT].get("isRequired")
    quick = await teams.click("bob", v.ACTIVATE, {"role": "quick"}, card_id="y")
    assert not inputs_of(quick["value"])[cards.JUSTIFICATION_INPUT].get("isRequired")


async def test_the_form_echoes_the_duration_as_typed(teams: TeamsBot):
    await setup(teams, "bob")
    result = await teams.click(
        "bob",
        cards.SUBMIT_ACTIVATION,
        {},
        card_id="1",
        inputs={cards.ROLE_INPUT: "quick", cards.DURATION_INPUT: "99h"},
    )
    assert "you asked for 99h" in dump(result["value"])
    assert "4d3h" not in dump(result["value"])


async def test_an_approver_gets_missed_cards_when_first_talking_to_the_bot(teams: TeamsBot):
    await setup(teams, "bob")  # Carol has not installed the app yet: no way to reach her
    await teams.say("bob", "activate global-admin 1h keys")
    await drained(teams.runtime)
    assert not [c for c in teams.connector.calls("post") if c.conversation_id == conv("carol")]

    await teams.say("carol", "help")
    (card,) = await teams.connector.wait_for("post", where=with_verb("carol", v.APPROVE))
    request_id = verbs(card_of(card))[0][1]["request"]
    assert "Bob Builder asks for Global Administrator for 1h." in dump(card.body)
    # and it is a real approval card: deciding on it redraws it like any other
    await teams.click("carol", v.APPROVE, {"request": request_id}, card_id=card.activity_id or "")
    await teams.connector.wait_for("update", where=lambda c: c.activity_id == card.activity_id)
    await drained(teams.runtime)
    again = [
        c
        for c in teams.connector.calls("post")
        if c.conversation_id == conv("carol")
        and request_id in dump(c.body)
        and with_verb("carol", v.APPROVE)(c)
    ]
    assert len(again) == 1  # once, not at every turn
