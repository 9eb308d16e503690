"""Access review cards in Slack Block Kit: a reviewer's items with Approve / Deny / Don't
know, and the modal that asks for a reason.

Each undecided item's buttons sit in their own actions block (`rvi:<item id>`), the button
value is the item id. A decided item shows who decided and why, without buttons.
"""

from __future__ import annotations

import json

from cards import views as v
from cards.review_text import item_line, recommendation_line
from cards.slack_modals import (
    MESSAGE_BLOCKS,
    Block,
    _input,
    _modal,
    _text_input,
    actions,
    button,
    context,
    esc,
    escape,
    header,
    message,
    section,
    slack_date,
)
from cards.views import REVIEW_EMOJI, ReviewCardView, ReviewItemView
from vocab.limits import MAX_JUSTIFICATION
from vocab.states import ReviewDecision

REVIEW_MODAL = "pim_review_modal"
REVIEW_REASON_BLOCK, REVIEW_REASON_ACTION = "review_reason", "pim_review_reason"
BUTTONS = (
    (ReviewDecision.APPROVE, "Approve", v.REVIEW_APPROVE, "primary"),
    (ReviewDecision.DENY, "Deny", v.REVIEW_DENY, "danger"),
    (ReviewDecision.DONT_KNOW, "Don't know", v.REVIEW_DONT_KNOW, None),
)
DECISION_OF = {action: decision for decision, _, action, _ in BUTTONS}


def _item_blocks(item: ReviewItemView, *, open_: bool, prefix: str) -> list[Block]:
    text = f"{REVIEW_EMOJI[item.decision]} *{esc(item_line(item), 1500)}*"
    if item.decided:
        return [section(f"{text}\n{esc(item.outcome_line(), 1400)}")]
    rec = recommendation_line(item)
    blocks = [section(text + (f"\n_{esc(rec, 500)}_" if rec else ""))]
    if open_:
        blocks.append(
            actions(
                f"{prefix}rvi:{item.id}",
                *(
                    button(label, action, str(item.id), style=style)
                    for _, label, action, style in BUTTONS
                ),
            )
        )
    return blocks


def review_blocks(
    card: ReviewCardView, *, room: int = MESSAGE_BLOCKS - 2, prefix: str = ""
) -> list[Block]:
    blocks = [
        section(
            f"*{esc(card.name, 500)}* #{card.number} · {card.decided} of "
            f"{card.total} decided · "
            + (f"ends {slack_date(card.ends_at)}" if card.open else "closed")
        )
    ]
    for item in card.items:
        more = _item_blocks(item, open_=card.open, prefix=prefix)
        if len(blocks) + len(more) > room - 1:
            break
        blocks += more
    shown = sum(1 for i in card.items if not i.decided)
    notes = (
        [f"{card.left - shown} more items after these: `/pim reviews`."]
        if card.left > shown
        else []
    )
    if card.open and card.left:
        notes.append(
            "Every decision asks for a reason."
            if card.require_reason
            else "Deny asks for a reason."
        )
    if notes:
        blocks.append(context(" ".join(notes)))
    return blocks


def review_message(card: ReviewCardView, headline: str) -> Block:
    return message(f"📋 {escape(headline)}", [header(f"📋 {headline}"), *review_blocks(card)])


def review_modal(
    item_id: int, decision: ReviewDecision, *, title: str, require_reason: bool
) -> Block:
    """Asks for the reason; private_metadata says which item and which way."""
    label = {ReviewDecision.APPROVE: "Approve", ReviewDecision.DENY: "Deny"}.get(
        decision, "Don't know"
    )
    why = (
        "Why are you removing this access?"
        if decision == ReviewDecision.DENY
        else "Why is this your answer?"
    )
    reason = _input(
        REVIEW_REASON_BLOCK,
        "Reason",
        _text_input(REVIEW_REASON_ACTION, why, multiline=True, max_length=MAX_JUSTIFICATION),
        optional=False,
        hint="It is kept in the audit log"
        + (
            "; the person is told it if their access is removed."
            if decision == ReviewDecision.DENY
            else "."
        ),
    )
    meta = json.dumps({"item": item_id, "decision": decision.value})
    intro = section(
        f"{label}: *{esc(title, 2000)}*"
        + ("\nThis review asks for a reason on every decision." if require_reason else "")
    )
    return _modal(
        REVIEW_MODAL, f"{label} access", [intro, reason], submit=label, private_metadata=meta
    )
