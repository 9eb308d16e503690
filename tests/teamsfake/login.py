"""A local fake of the Microsoft identity platform's token endpoint, where a bot trades its
app id and secret for a Bot Framework token (client-credentials grant).

    async with FakeLogin(app_id="…", secret="…") as login:
        settings = Settings.from_env({..., "MICROSOFT_LOGIN_URL": login.url})

It answers as Entra does: a token for the right pair; `invalid_client` (AADSTS7000215) for a
wrong secret; `unauthorized_client` (AADSTS700016) for an app id it does not know.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web


class FakeLogin:
    def __init__(self, *, app_id: str, secret: str) -> None:
        self.app_id, self.secret = app_id, secret
        self.requests: list[dict[str, Any]] = []  # (tenant, form) of each token request
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> FakeLogin:
        app = web.Application()
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.requests.append({"tenant": request.match_info["tenant"], **form})
        if form.get("client_id") != self.app_id:
            return web.json_response(
                {
                    "error": "unauthorized_client",
                    "error_description": "AADSTS700016: Application with identifier "
                    f"'{form.get('client_id')}' was not found.",
                },
                status=400,
            )
        if form.get("client_secret") != self.secret:
            return web.json_response(
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                },
                status=401,
            )
        return web.json_response(
            {"token_type": "Bearer", "expires_in": 3599, "access_token": "fake-bot-framework-token"}
        )
