"""Start-up check of the Bot Framework credentials: can pim-bot get a token with them?
Without one every proactive message (approval cards, "access ended") fails later."""

from __future__ import annotations

import aiohttp

from bot.checks import Check
from bot.config import Settings

# The token Bot Framework asks a bot to present to the connector (botbuilder's own values).
_SCOPE = "https://api.botframework.com/.default"
_MULTI_TENANT = "botframework.com"
_TIMEOUT = 15.0  # seconds: the login endpoint answers in well under one
_FIX = {
    "invalid_client": "create a new client secret for the app registration and put its "
    "value (not its id) into MICROSOFT_APP_PASSWORD",
    "unauthorized_client": "MICROSOFT_APP_ID must be the Azure Bot's Microsoft App ID; "
    "for a single-tenant bot set MICROSOFT_APP_TYPE=SingleTenant "
    "and MICROSOFT_APP_TENANT_ID",
}


def token_url(settings: Settings) -> str:
    single = (settings.microsoft_app_type or "").lower() == "singletenant"
    tenant = settings.microsoft_app_tenant_id if single else None
    return f"{settings.microsoft_login_url.rstrip('/')}/{tenant or _MULTI_TENANT}/oauth2/v2.0/token"


async def check_teams(settings: Settings) -> list[Check]:
    """The client-credentials grant botbuilder makes before its first message."""
    if not settings.microsoft_app_id:
        return [Check.skip("teams", "MICROSOFT_APP_ID is not set")]
    if (settings.microsoft_app_type or "").lower() == "userassignedmsi":
        return [Check.skip("teams", "a managed identity has no secret to check here")]
    form = {
        "grant_type": "client_credentials",
        "client_id": settings.microsoft_app_id,
        "client_secret": settings.microsoft_app_password or "",
        "scope": _SCOPE,
    }
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=_TIMEOUT)) as http:
            async with http.post(token_url(settings), data=form) as resp:
                body = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as err:
        return [
            Check.failed(
                "teams",
                f"no Bot Framework token ({type(err).__name__}: {err})",
                "check the network path to the Microsoft login endpoint",
            )
        ]
    if isinstance(body, dict) and body.get("access_token"):
        return [Check.passed("teams", f"Bot Framework token for app {settings.microsoft_app_id}")]
    error = str(body.get("error", "")) if isinstance(body, dict) else ""
    described = str(body.get("error_description", "")) if isinstance(body, dict) else ""
    return [
        Check.failed(
            "teams",
            f"Microsoft refused MICROSOFT_APP_ID/MICROSOFT_APP_PASSWORD "
            f"({error or resp.status}: {described.splitlines()[0][:160] if described else ''})",
            _FIX.get(
                error,
                "check MICROSOFT_APP_ID, MICROSOFT_APP_PASSWORD, MICROSOFT_APP_TYPE "
                "and MICROSOFT_APP_TENANT_ID",
            ),
        )
    ]
