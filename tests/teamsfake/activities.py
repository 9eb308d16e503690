"""Incoming activities exactly as Teams POSTs them to the bot's `/api/messages` (JSON dicts).

    body = message("activate Reader", user_aad="aad-alice", user_name="Alice",
                   service_url=fake.service_url)
    await http.post("/api/messages", json=body)

Personal (1:1) scope throughout: `conversation.conversationType` "personal", the tenant both in
`conversation.tenantId` (which botbuilder's schema does NOT read: its field is `tenantID`) and in
`channelData.tenant.id` (where the bot must read it), `from.aadObjectId` = Entra object id.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

BOT_ID = "28:bot-app-id"
BOT_NAME = "pim-bot"
_seq = itertools.count(1)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def personal_conversation_id(user_aad: str) -> str:
    return f"a:personal-{user_aad}"


def _base(
    type_: str,
    *,
    user_aad: str,
    service_url: str,
    user_name: str | None = None,
    conversation_id: str | None = None,
    tenant_id: str = "tenant-1",
    user_id: str | None = None,
    locale: str = "en-US",
    bot_id: str = BOT_ID,
    bot_name: str = BOT_NAME,
    activity_id: str | None = None,
) -> dict[str, Any]:
    user: dict[str, Any] = {"id": user_id or f"29:{user_aad}", "aadObjectId": user_aad}
    if user_name is not None:
        user["name"] = user_name
    return {
        "type": type_,
        "id": activity_id or str(1710000000000 + next(_seq)),
        "timestamp": _now(),
        "localTimestamp": _now(),
        "channelId": "msteams",
        "serviceUrl": service_url,
        "from": user,
        "conversation": {
            "conversationType": "personal",
            "tenantId": tenant_id,
            "id": conversation_id or personal_conversation_id(user_aad),
        },
        "recipient": {"id": bot_id, "name": bot_name},
        "entities": [
            {
                "type": "clientInfo",
                "locale": locale,
                "country": locale[-2:],
                "platform": "Web",
                "timezone": "Europe/Berlin",
            }
        ],
        "channelData": {"tenant": {"id": tenant_id}},
        "locale": locale,
        "localTimezone": "Europe/Berlin",
    }


def message(
    text: str, *, user_aad: str, service_url: str, user_name: str | None = "User", **kw: Any
) -> dict[str, Any]:
    """A personal-chat text message. kw: conversation_id, tenant_id, user_id, locale,
    bot_id, bot_name, activity_id."""
    body = _base("message", user_aad=user_aad, service_url=service_url, user_name=user_name, **kw)
    body.update(text=text, textFormat="plain", attachments=[])
    return body


def invoke_action(
    verb: str,
    data: dict[str, Any] | None = None,
    *,
    user_aad: str,
    service_url: str,
    reply_to_id: str,
    inputs: dict[str, Any] | None = None,
    title: str | None = None,
    user_name: str | None = "User",
    **kw: Any,
) -> dict[str, Any]:
    """A click on an `Action.Execute` button of the card posted as activity `reply_to_id`.
    Teams merges the card's input values (`inputs`, id -> value) into `data`."""
    body = _base(
        "invoke",
        user_aad=user_aad,
        service_url=service_url,
        user_name=user_name,
        activity_id=kw.pop("activity_id", None) or f"f:{uuid.uuid4()}",
        **kw,
    )
    action: dict[str, Any] = {
        "type": "Action.Execute",
        "verb": verb,
        "data": {**(data or {}), **(inputs or {})},
    }
    if title is not None:
        action["title"] = title
    body.update(
        name="adaptiveCard/action",
        replyToId=reply_to_id,
        value={"action": action, "trigger": "manual"},
    )
    body["channelData"].update(source={"name": "message"}, legacy={"replyToId": reply_to_id})
    return body


def installation_update(
    user_aad: str, *, service_url: str, action: str = "add", user_name: str | None = None, **kw: Any
) -> dict[str, Any]:
    """The app was added to (action "add") or removed from ("remove") the user's personal scope.
    Teams sends no `from.name` here."""
    body = _base(
        "installationUpdate",
        user_aad=user_aad,
        service_url=service_url,
        user_name=user_name,
        activity_id=kw.pop("activity_id", None) or f"f:{uuid.uuid4()}",
        **kw,
    )
    body["action"] = action
    body["channelData"]["source"] = {"name": "message"}
    return body


def conversation_update_members_added(
    user_aad: str,
    *,
    service_url: str,
    members_added: list[dict[str, Any]] | None = None,
    user_name: str | None = None,
    **kw: Any,
) -> dict[str, Any]:
    """On a personal install Teams also sends this, with the bot itself in `membersAdded`."""
    body = _base(
        "conversationUpdate",
        user_aad=user_aad,
        service_url=service_url,
        user_name=user_name,
        activity_id=kw.pop("activity_id", None) or f"f:{uuid.uuid4()}",
        **kw,
    )
    body["membersAdded"] = (
        members_added if members_added is not None else [{"id": body["recipient"]["id"]}]
    )
    return body


def conversation_reference(
    user_aad: str, *, service_url: str, user_name: str | None = "User", **kw: Any
) -> dict[str, Any]:
    """A stored conversation reference (ConversationReference JSON) for proactive messages:
    `ConversationReference().deserialize(conversation_reference(...))`."""
    body = _base("message", user_aad=user_aad, service_url=service_url, user_name=user_name, **kw)
    return {
        "activityId": body["id"],
        "user": body["from"],
        "bot": body["recipient"],
        "conversation": body["conversation"],
        "channelId": "msteams",
        "locale": body["locale"],
        "serviceUrl": service_url,
    }
