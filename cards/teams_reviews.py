"""Access review cards for Teams (Adaptive Cards 1.4): a reviewer's items, each with a
"Decide" button that opens its own reason input and Approve / Deny / Don't know.

Each item's input lives in its own Action.ShowCard, so Teams gathers (and checks `isRequired`
on) only that item's reason when one of its buttons is clicked: `data` arrives as
`{"item": "12", "reason-12": "…"}` (review_reason_input).
"""

from __future__ import annotations

from cards import views as v
from cards.review_text import item_line, recommendation_line
from cards.teams_forms import (
    Element,
    action_set,
    card,
    execute,
    fit,
    heading,
    hint,
    literal,
    text_input,
)
from cards.views import REVIEW_EMOJI, ReviewCardView, ReviewItemView, ReviewsView, when
from vocab.limits import MAX_JUSTIFICATION

BUTTONS = (
    ("Approve", v.REVIEW_APPROVE, "positive"),
    ("Deny", v.REVIEW_DENY, "destructive"),
    ("Don't know", v.REVIEW_DONT_KNOW, None),
)


def review_reason_input(item_id: int | str) -> str:
    return f"reason-{item_id}"


def _decide(item: ReviewItemView, require_reason: bool) -> Element:
    reason = text_input(
        review_reason_input(item.id),
        "Reason (required)" if require_reason else "Reason (required to deny)",
        "Kept in the audit log; told to the person if access is removed.",
        multiline=True,
        max_length=MAX_JUSTIFICATION,
    )
    if require_reason:
        reason["isRequired"] = True
        reason["errorMessage"] = "This review asks for a reason on every decision."
    inner = card(
        [reason],
        [
            execute(label, verb, {"item": str(item.id)}, **({"style": style} if style else {}))
            for label, verb, style in BUTTONS
        ],
    )
    del inner["$schema"], inner["version"]  # a ShowCard's card takes neither
    # The id tells one item's Decide from the next (a ShowCard carries no data).
    return {"type": "Action.ShowCard", "id": f"decide-{item.id}", "title": "Decide", "card": inner}


def _item(item: ReviewItemView, review: ReviewCardView) -> Element:
    items = [literal(f"{REVIEW_EMOJI[item.decision]} {item_line(item)}", 1000, weight="bolder")]
    if item.decided:
        items.append(literal(item.outcome_line(), spacing="none"))
    else:
        rec = recommendation_line(item)
        if rec:
            items.append(literal(rec, 500, isSubtle=True, spacing="none"))
        if review.open:
            items.append(action_set(_decide(item, review.require_reason)))
    return {"type": "Container", "separator": True, "items": items}


def _body(review: ReviewCardView) -> tuple[list[Element], list[Element]]:
    state = f"ends {when(review.ends_at)}" if review.open else "closed"
    head = [
        literal(
            f"{review.name} #{review.number} · {review.decided} of {review.total} "
            f"decided · {state}",
            1000,
            isSubtle=True,
        )
    ]
    return head, [_item(item, review) for item in review.items]


def _notes(review: ReviewCardView) -> list[Element]:
    shown = sum(1 for i in review.items if not i.decided)
    if review.left > shown:
        return [hint(f"{review.left - shown} more items after these: type reviews.")]
    return []


def review_card(review: ReviewCardView, headline: str) -> Element:
    head, items = _body(review)
    body, _ = fit([heading("📋 Access review"), literal(headline, 500), *head], items)
    return card(body + _notes(review))


def reviews_card(view: ReviewsView) -> Element:
    if not view.cards:
        return card([literal(view.empty_text)])
    parts: list[Element] = [heading("📋 Your access reviews")]
    for review in view.cards:
        head, items = _body(review)
        parts += [*head, *items, *_notes(review)]
    body, left = fit(parts[:1], parts[1:])
    if left:
        body.append(hint("More not shown; decide these first."))
    return card(body)
