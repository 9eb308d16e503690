"""Access review cards as plain text: the console, and every platform's fallback text."""

from __future__ import annotations

from cards.views import REVIEW_EMOJI, ReviewCardView, ReviewItemView, ReviewsView
from vocab.states import ReviewDecision

HOW = "review ITEM approve|deny|dontknow [REASON…]"


def item_line(item: ReviewItemView) -> str:
    """`#12 Bob Builder <bob@…> · Global Administrator (eligible)`."""
    return f"#{item.id} {item.person.name} <{item.person.email}> · {item.role.name} ({item.kind})"


def recommendation_line(item: ReviewItemView) -> str | None:
    if item.recommendation is None:
        return None
    word = "approve" if item.recommendation == ReviewDecision.APPROVE else "deny"
    return f"pim-bot recommends: {word} — {item.recommendation_reason}"


def review_card_text(card: ReviewCardView, headline: str | None = None) -> str:
    lines = [
        f"📋 {headline or card.name}",
        f"  {card.name} #{card.number} · {card.progress_line()}",
    ]
    for item in card.items:
        lines.append(f"  {REVIEW_EMOJI[item.decision]} {item_line(item)}")
        if item.decided:
            lines.append(f"      {item.outcome_line()}")
            continue
        rec = recommendation_line(item)
        if rec:
            lines.append(f"      {rec}")
    shown = sum(1 for i in card.items if not i.decided)
    if card.left > shown:
        lines.append(f"  {card.left - shown} more items after these: type `reviews` again.")
    if card.open and card.left:
        need = "a reason on every decision" if card.require_reason else "a reason to deny"
        lines.append(f"  → {HOW}   ({need})")
    return "\n".join(lines)


def reviews_text(view: ReviewsView) -> str:
    if not view.cards:
        return view.empty_text
    return "\n\n".join(review_card_text(card) for card in view.cards)
