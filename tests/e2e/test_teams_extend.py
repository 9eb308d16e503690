"""Extend from the expiry warning, and Request again from the "access ended" notice, in Teams
through the real botbuilder adapter (issue 12, item 14)."""

from __future__ import annotations

from sqlalchemy import select

from cards import teams as cards
from cards import views as v
from storage.models import AuditEvent
from tests.e2e.teams_harness import TeamsBot, dump, setup, to, verbs, with_verb
from tests.teamsfake import card_of

MESSAGE = "application/vnd.microsoft.activity.message"


async def test_extend_from_the_expiry_warning(teams: TeamsBot):
    await setup(teams, "bob")
    await teams.say("bob", "activate quick 4s checking the queue")
    (warning,) = await teams.connector.wait_for("post", where=with_verb("bob", v.EXTEND))
    assert verbs(card_of(warning)) == [(v.EXTEND, {"role": "quick"})]
    result = await teams.click(
        "bob", v.EXTEND, {"role": "quick"}, card_id=warning.activity_id or ""
    )
    assert result["type"] == MESSAGE
    assert result["value"].startswith("Quick Role is extended until"), result
    async with teams.runtime.uow.transaction() as s:
        actions = (await s.scalars(select(AuditEvent.action))).all()
    assert "role.extended" in actions
    # the role's maximum (1h) is counted from the start: a second Extend has no room left
    again = await teams.click("bob", v.EXTEND, {"role": "quick"}, card_id=warning.activity_id or "")
    assert "at most 1h from its start" in again["value"]


async def test_request_again_after_the_end_prefills_the_last_justification(teams: TeamsBot):
    await setup(teams, "bob")
    await teams.say("bob", "activate quick 2s printer queue stuck")
    (ended,) = await teams.connector.wait_for(
        "post", where=lambda c: to("bob", "access has ended")(c)
    )
    assert verbs(card_of(ended)) == [(v.REQUEST_AGAIN, {"role": "quick"})]
    form = await teams.click(
        "bob", v.REQUEST_AGAIN, {"role": "quick"}, card_id=ended.activity_id or ""
    )
    body = dump(form["value"])
    assert cards.SUBMIT_ACTIVATION in body and "printer queue stuck" in body
