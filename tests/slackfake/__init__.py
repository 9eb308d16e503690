"""Test kit for the Slack transport: a local fake of the Slack Web API and signed payloads."""

from .server import Call, FakeSlackAPI, dm_id
from .signing import (
    app_home_opened,
    block_action,
    select_value,
    sign,
    slash_command,
    text_value,
    url_verification,
    view_submission,
)

__all__ = [
    "Call",
    "FakeSlackAPI",
    "app_home_opened",
    "block_action",
    "dm_id",
    "select_value",
    "sign",
    "slash_command",
    "text_value",
    "url_verification",
    "view_submission",
]
