"""Access review cards on every surface: valid Block Kit and Adaptive Cards, user text shown
as typed, and each item's buttons carrying its id (Teams: with that item's own reason)."""

from __future__ import annotations

import json

from cards import slack, teams
from cards import text as text_cards
from cards import views as v
from cards.views import Notification
from tests.cards.helpers import actions_of, check_card, check_message, check_view, click, shown
from tests.cards.review_samples import CARD, CLOSED, EMPTY, HOSTILE, LIST, MANY, STRICT
from vocab.states import ReviewDecision

ESCAPED = slack.escape(HOSTILE)


def note(card: v.ReviewCardView, kind: str = v.REVIEW_CARD) -> Notification:
    return Notification(kind=kind, headline=f"Please review access: {card.name}", review=card)


def test_slack_card_has_three_buttons_per_open_item_and_escapes_text() -> None:
    message = check_message(slack.notification_message(note(CARD)))
    buttons = [(b["action_id"], b["value"], b["text"]["text"]) for b in actions_of(message)]
    assert buttons == [
        (a, item, label)
        for item in ("12", "13")
        for a, label in (
            (v.REVIEW_APPROVE, "Approve"),
            (v.REVIEW_DENY, "Deny"),
            (v.REVIEW_DONT_KNOW, "Don't know"),
        )
    ]
    text = shown(message)
    assert ESCAPED in text and "<!channel>" not in json.dumps(message)
    assert "no activation in 30 days" in text and "activated 12 times in 30 days" in text
    assert "Denied by Carol Chen" in text and "1 of 3 decided" in text
    assert "Deny asks for a reason." in text
    strict = shown(check_message(slack.notification_message(note(STRICT))))
    assert "Every decision asks for a reason." in strict


def test_slack_closed_card_and_redraw_have_no_buttons() -> None:
    for card in (CLOSED,):
        message = check_message(slack.notification_message(note(card, v.REVIEW_UPDATE)))
        assert actions_of(message) == [] and "closed" in shown(message)


def test_slack_long_list_counts_the_rest_and_reviews_reply_fits() -> None:
    message = check_message(slack.notification_message(note(MANY)))
    assert "52 more items after these" in shown(message)
    reply = check_message(slack.reply_message(LIST))
    assert len(actions_of(reply)) == 3 * 10
    assert "No access reviews are waiting for you." in shown(slack.reply_message(EMPTY))


def test_slack_reason_modal() -> None:
    modal = check_view(
        slack.review_modal(12, ReviewDecision.DENY, title=f"Bob · {HOSTILE}", require_reason=False)
    )
    assert modal["callback_id"] == slack.REVIEW_MODAL
    assert json.loads(modal["private_metadata"]) == {"item": 12, "decision": "Deny"}
    assert ESCAPED in shown(modal)


def test_teams_card_each_item_decides_with_its_own_reason() -> None:
    card = check_card(teams.notification_card(note(CARD)))
    assert click(card, v.REVIEW_DENY, {"reason-12": "left"}, data={"item": "12"}) == {
        "verb": v.REVIEW_DENY,
        "data": {"item": "12", "reason-12": "left", "reason-13": ""},
    }
    strict = check_card(teams.notification_card(note(STRICT)))
    required = [i for i in json.dumps(strict).split('"id": ')[1:] if "isRequired" in i]
    assert len(required) == 2 and "errorMessage" in json.dumps(strict)
    assert "isRequired" not in json.dumps(card)
    closed = check_card(teams.notification_card(note(CLOSED, v.REVIEW_UPDATE)))
    assert "Action.Execute" not in json.dumps(closed)
    check_card(teams.reply_card(LIST))
    check_card(teams.reply_card(EMPTY))
    check_card(teams.notification_card(note(MANY)))


def test_text_card_tells_the_console_how_to_decide() -> None:
    text = text_cards.render(note(CARD))
    assert "#12 Bob Builder <bob@contoso.com> · Global Administrator (eligible)" in text
    assert "pim-bot recommends: deny — no activation in 30 days" in text
    assert "review ITEM approve|deny|dontknow [REASON…]" in text
    assert text_cards.render(EMPTY) == "No access reviews are waiting for you."


def test_review_cards_survive_the_outbox_round_trip() -> None:
    original = note(CARD)
    again = Notification.from_dict(json.loads(json.dumps(original.to_dict())))
    assert again == original
