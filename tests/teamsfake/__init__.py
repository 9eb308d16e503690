"""Test kit for the Teams transport: a local fake of the Bot Framework connector service
(`serviceUrl`) and incoming activities as Teams sends them to `/api/messages`."""

from .activities import (
    BOT_ID,
    BOT_NAME,
    conversation_reference,
    conversation_update_members_added,
    installation_update,
    invoke_action,
    message,
    personal_conversation_id,
)
from .connector import ADAPTIVE, Call, FakeConnector, card_of
from .login import FakeLogin

__all__ = [
    "ADAPTIVE",
    "BOT_ID",
    "BOT_NAME",
    "Call",
    "FakeConnector",
    "FakeLogin",
    "card_of",
    "conversation_reference",
    "conversation_update_members_added",
    "installation_update",
    "invoke_action",
    "message",
    "personal_conversation_id",
]
