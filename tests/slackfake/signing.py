"""Signed Slack requests: `sign()` and builders for the bodies Slack sends to `/slack/events`.

    body = slash_command("activate Reader", user_id="U0BOB", response_url=fake.response_url())
    resp = await client.post("/slack/events", data=body, headers=sign(body, SECRET))

Builders return the exact bytes to send; sign those same bytes (signing covers the raw body).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any
from urllib.parse import urlencode

TEAM = {"id": "T1", "domain": "contoso"}
APP_ID = "A1"
VERIFICATION_TOKEN = "verification-token"  # legacy field Slack still sends; Bolt ignores it
# Loopback port 9 refuses connections: a stray respond() fails fast instead of leaving the box.
NOWHERE = "http://127.0.0.1:9/response/unset"

_ids = itertools.count(1)


def sign(body: bytes, secret: str, *, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack sends with `body`: v0 signature, timestamp and content type."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    json_body = body.lstrip()[:1] == b"{"
    return {
        "Content-Type": "application/json" if json_body else "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }


def _json(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _payload(payload: dict[str, Any]) -> bytes:
    return urlencode({"payload": _json(payload)}).encode()


def _team(team_id: str) -> dict[str, str]:
    return TEAM if team_id == TEAM["id"] else {"id": team_id, "domain": team_id.lower()}


def _user(user_id: str, team_id: str) -> dict[str, str]:
    name = user_id.lower()
    return {"id": user_id, "username": name, "name": name, "team_id": team_id}


def slash_command(
    text: str,
    *,
    user_id: str,
    user_name: str = "bob",
    command: str = "/pim",
    team_id: str = "T1",
    channel_id: str = "C1",
    trigger_id: str = "1.2.3",
    response_url: str = NOWHERE,
) -> bytes:
    """A slash command, form-encoded with Slack's fields in Slack's order."""
    return urlencode(
        {
            "token": VERIFICATION_TOKEN,
            "team_id": team_id,
            "team_domain": TEAM["domain"],
            "channel_id": channel_id,
            "channel_name": "directmessage" if channel_id[:1] == "D" else "general",
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
    ).encode()


def block_action(
    action_id: str,
    value: str,
    *,
    user_id: str,
    block_id: str = "b1",
    container: dict | None = None,
    trigger_id: str = "1.2.3",
    response_url: str | None = None,
    view: dict | None = None,
    message: dict | None = None,
    channel_id: str | None = None,
    team_id: str = TEAM["id"],
    user_team_id: str | None = None,
) -> bytes:
    """A button click (`block_actions`), on a message (pass `message` with its `ts` and
    `channel_id`) or on a view such as App Home or a modal (pass `view` with its `id`).
    `team_id` is the workspace the click comes through; `user_team_id` the clicker's own
    workspace (another one for a Slack Connect user in a shared channel)."""
    if container is None:
        if view is not None:
            container = {"type": "view", "view_id": view.get("id", "V1")}
        else:
            container = {
                "type": "message",
                "message_ts": (message or {}).get("ts", "1.1"),
                "channel_id": channel_id,
                "is_ephemeral": False,
            }
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _user(user_id, user_team_id or team_id),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": container,
        "trigger_id": trigger_id,
        "team": _team(team_id),
        "enterprise": None,
        "is_enterprise_install": False,
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "value": value,
                "type": "button",
                "text": {"type": "plain_text", "text": action_id},
                "action_ts": f"{time.time():.6f}",
            }
        ],
        "state": {"values": {}},
    }
    if channel_id is not None:
        payload["channel"] = {"id": channel_id, "name": "directmessage"}
    if message is not None:
        payload["message"] = message
    if view is not None:
        payload["view"] = view
    if response_url is not None:
        payload["response_url"] = response_url
    return _payload(payload)


def view_submission(
    callback_id: str,
    state_values: dict[str, Any],
    *,
    user_id: str,
    private_metadata: str = "",
    view_id: str = "V1",
    hash: str = "h",
    team_id: str = TEAM["id"],
) -> bytes:
    """A modal submitted. `state_values` is Slack's `{block_id: {action_id: value}}`; build the
    values with `text_value()` / `select_value()`."""
    view: dict[str, Any] = {
        "id": view_id,
        "team_id": team_id,
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": private_metadata,
        "hash": hash,
        "app_id": APP_ID,
        "title": {"type": "plain_text", "text": "PIM"},
        "blocks": [],
        "state": {"values": state_values},
        "root_view_id": view_id,
        "previous_view_id": None,
    }
    return _payload(
        {
            "type": "view_submission",
            "team": _team(team_id),
            "user": _user(user_id, team_id),
            "api_app_id": APP_ID,
            "token": VERIFICATION_TOKEN,
            "trigger_id": "1.2.3",
            "view": view,
            "response_urls": [],
            "enterprise": None,
            "is_enterprise_install": False,
        }
    )


def text_value(value: str | None) -> dict[str, Any]:
    """A plain-text input's entry in `view.state.values`."""
    return {"type": "plain_text_input", "value": value}


def select_value(value: str | None, text: str | None = None) -> dict[str, Any]:
    """A static select's entry in `view.state.values` (None: nothing selected)."""
    if value is None:
        return {"type": "static_select", "selected_option": None}
    option = {"text": {"type": "plain_text", "text": text or value}, "value": value}
    return {"type": "static_select", "selected_option": option}


def _event(
    event: dict[str, Any], *, team_id: str = TEAM["id"], event_id: str | None = None
) -> bytes:
    n = next(_ids)
    return _json(
        {
            "token": VERIFICATION_TOKEN,
            "team_id": team_id,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{n:08d}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "team_id": team_id,
                    "user_id": "UBOT",
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }
    ).encode()


def app_home_opened(
    user_id: str, *, team_id: str = TEAM["id"], event_id: str | None = None
) -> bytes:
    """The Events API callback Slack sends when a user opens the app's Home tab. Slack's own
    retries of one event carry the same `event_id`."""
    return _event(
        {
            "type": "app_home_opened",
            "user": user_id,
            "channel": "D" + user_id[1:],
            "tab": "home",
            "event_ts": f"{time.time():.6f}",
        },
        team_id=team_id,
        event_id=event_id,
    )


def url_verification(challenge: str) -> bytes:
    return _json(
        {"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"}
    ).encode()
