"""The review timers' actions, for the timer-action table the composition root builds."""

from __future__ import annotations

from handlers.reviews.apply import RemovalHook, close_action
from handlers.reviews.open import open_due
from handlers.reviews.remind import remind_due
from handlers.reviews.schedule import CLOSE, OPEN, REMIND
from handlers.timers import BatchAction, one_by_one


def review_actions(*, on_removed: RemovalHook | None = None) -> dict[str, BatchAction]:
    """on_removed: called with the assignments a review removed (grants revoke them)."""
    return {OPEN: one_by_one(open_due), REMIND: remind_due, CLOSE: close_action(on_removed)}
