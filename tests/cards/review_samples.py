"""Review card views for the card tests and the renderer: hostile text in every field a
person typed, decided and open items, a long list."""

from __future__ import annotations

from dataclasses import replace

from cards.views import Person, ReviewCardView, ReviewItemView, ReviewsView, RoleRef
from vocab.states import ReviewDecision

HOSTILE = (
    "[click](https://evil) **bold** `code` <b>x</b> _it_ ~~s~~ &lt; <!channel> "
    "{{DATE(2026-01-01T00:00:00Z, SHORT)}}"
)
ENDS = "2027-01-18T00:00:00+00:00"
BOB = Person(email="bob@contoso.com", name="Bob Builder")
CAROL = Person(email="carol@contoso.com", name="Carol Chen")
GA = RoleRef(id="global-admin", name="Global Administrator")

OPEN_ITEM = ReviewItemView(
    id=12,
    person=BOB,
    role=GA,
    kind="eligible",
    recommendation=ReviewDecision.DENY,
    recommendation_reason="no activation in 30 days",
)
USED_ITEM = replace(
    OPEN_ITEM,
    id=13,
    person=Person("odd@contoso.com", HOSTILE),
    recommendation=ReviewDecision.APPROVE,
    recommendation_reason="activated 12 times in 30 days",
)
DECIDED_ITEM = replace(
    OPEN_ITEM,
    id=11,
    decision=ReviewDecision.DENY,
    decided_by=CAROL,
    decided_at="2027-01-05T10:00:00+00:00",
    reason=HOSTILE,
)
CARD = ReviewCardView(
    card="review:1:3",
    review_id="q-admins",
    name="Quarterly privileged role review",
    number=1,
    ends_at=ENDS,
    require_reason=False,
    items=(DECIDED_ITEM, OPEN_ITEM, USED_ITEM),
    total=3,
    decided=1,
)
STRICT = replace(CARD, require_reason=True)
CLOSED = replace(CARD, open=False)
MANY = replace(
    CARD,
    total=60,
    decided=0,
    items=tuple(
        replace(OPEN_ITEM, id=100 + i, recommendation=None, recommendation_reason=None)
        for i in range(8)
    ),
)
LIST = ReviewsView(cards=(CARD, MANY))
EMPTY = ReviewsView(cards=())
CARDS = {"open": CARD, "strict": STRICT, "closed": CLOSED, "many": MANY}
