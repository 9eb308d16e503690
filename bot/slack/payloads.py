"""What a well-formed Slack request looks like, checked before Bolt dispatches it.

A signed request can still be malformed (a bug at Slack, a proxy, a replayed fragment). Such a
request gets a 4xx and one log line; a listener only ever sees the shape it expects."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


class Malformed(Exception):
    """A request that cannot be what Slack sends; the reason goes to the log and the 4xx."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _require(ok: bool, reason: str) -> None:
    if not ok:
        raise Malformed(reason)


def _is_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _check_actions(body: dict[str, Any]) -> None:
    actions = body.get("actions")
    _require(isinstance(actions, list) and bool(actions), "block_actions without actions")
    first = actions[0]  # type: ignore[index]
    _require(
        isinstance(first, dict) and _is_str(first.get("action_id")),
        "an action without an action_id",
    )
    # Every button pim-bot draws carries a value (a request id or a role).
    _require(_is_str(first.get("value")), "an action without a value")
    _require(_is_str(body.get("trigger_id", "x")), "a trigger_id that is not text")


def _check_view(body: dict[str, Any]) -> None:
    view = body.get("view")
    _require(isinstance(view, dict), "a view_submission without a view")
    assert isinstance(view, dict)  # _require raised otherwise; this tells mypy
    state = view.get("state", {})
    _require(
        isinstance(state, dict) and isinstance(state.get("values", {}), dict),
        "a view whose state is not an object",
    )
    _require(isinstance(view.get("private_metadata", ""), str), "private_metadata not text")


def _check_command(body: dict[str, Any]) -> None:
    _require(_is_str(body.get("user_id")), "a slash command without user_id")


def _check_user(body: dict[str, Any]) -> None:
    user = body.get("user")
    _require(isinstance(user, dict) and _is_str(user.get("id")), "a payload without user.id")


def _check_event(body: dict[str, Any]) -> None:
    _require(isinstance(body.get("event"), dict), "an event callback without an event")


_BY_TYPE: dict[str, tuple[Callable[[dict[str, Any]], None], ...]] = {
    "block_actions": (_check_user, _check_actions),
    "view_submission": (_check_user, _check_view),
    "event_callback": (_check_event,),
    "command": (_check_command,),
}


def check(body: Any) -> None:
    """Raise Malformed for a body no listener could read (Bolt itself would fail with a 500
    on some, even in its error handler)."""
    _require(isinstance(body, dict), "a body that is not an object")
    kind = "command" if "command" in body else str(body.get("type", ""))
    for part in _BY_TYPE.get(kind, ()):
        part(body)


def metadata(view: dict[str, Any]) -> dict[str, Any]:
    """A modal's private_metadata, which we wrote as a JSON object."""
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        raise Malformed("private_metadata is not JSON") from None
    _require(isinstance(meta, dict), "private_metadata is not a JSON object")
    return meta


def refuse(err: Malformed) -> None:
    logger.info("malformed Slack request refused: %s", err.reason)
