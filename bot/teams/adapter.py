"""The CloudAdapter, configured from Settings, with the invoke-response fix."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

from aiohttp import web
from botbuilder.core import Bot
from botbuilder.core.serializer_helper import serializer_helper
from botbuilder.integration.aiohttp import (
    CloudAdapter,
    ConfigurationBotFrameworkAuthentication,
)
from botbuilder.schema import Activity
from jwt.exceptions import PyJWTError

from bot.config import Settings

logger = logging.getLogger(__name__)


class PimCloudAdapter(CloudAdapter):
    """botbuilder 4.17.1's aiohttp CloudAdapter serialises an invoke response body that is
    already plain JSON a second time and answers HTTP 500 to every Action.Execute. This
    version serialises only bodies that are not plain JSON yet."""

    async def process(self, request: web.Request, bot: Bot, ws_response: Any = None) -> Any:
        if request.method != "POST":
            raise web.HTTPMethodNotAllowed(request.method, ["POST"])
        if "application/json" not in request.headers.get("Content-Type", ""):
            raise web.HTTPUnsupportedMediaType()
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="the body is not JSON") from None
        try:
            activity = Activity().deserialize(body) if isinstance(body, dict) else Activity()
        except ValueError as err:  # msrest's DeserializationError: a field of the wrong shape
            logger.info("Teams activity refused: %s", str(err)[:200])
            raise web.HTTPBadRequest(text="the activity is malformed") from None
        if not activity.type:
            raise web.HTTPBadRequest(text="an activity needs a type")
        try:
            identity = await self.bot_framework_authentication.authenticate_request(
                activity, request.headers.get("Authorization", "")
            )
        except (PermissionError, PyJWTError, KeyError) as err:
            # botbuilder lets a malformed token (DecodeError) or one without an issuer
            # (KeyError) escape as HTTP 500; every bad token is a 401.
            logger.info("Teams request refused: %s", type(err).__name__)
            raise web.HTTPUnauthorized() from None
        invoke = await self.process_activity(identity, activity, bot.on_turn)
        if invoke is None:
            return web.Response(status=201)
        payload = invoke.body
        if payload is not None and not isinstance(payload, dict | list | str | int | float):
            payload = serializer_helper(payload)
        return web.json_response(data=payload, status=invoke.status)


def teams_missing(settings: Settings) -> str | None:
    if settings.microsoft_app_id:
        return None
    if settings.teams_allow_unauthenticated:
        return None
    return "MICROSOFT_APP_ID is not set (PIM_TEAMS_ALLOW_UNAUTHENTICATED=1 for local testing only)"


def make_adapter(settings: Settings) -> PimCloudAdapter:
    if not settings.microsoft_app_id:
        logger.warning(
            "Teams runs WITHOUT authentication (PIM_TEAMS_ALLOW_UNAUTHENTICATED=1): "
            "anyone who can reach /api/messages can act as anyone. Local testing only."
        )
    config = SimpleNamespace(
        APP_ID=settings.microsoft_app_id or "",
        APP_PASSWORD=settings.microsoft_app_password or "",
        APP_TYPE=settings.microsoft_app_type or "MultiTenant",
        APP_TENANTID=settings.microsoft_app_tenant_id or "",
    )
    return PimCloudAdapter(ConfigurationBotFrameworkAuthentication(config))
