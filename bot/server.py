"""The one aiohttp server: health now; Slack and Teams mount their routes on it."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.web_log import AccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse
from sqlalchemy import text

from bot.runtime import Runtime
from storage.grant_claims import grants_failed
from storage.migrate import revision_status

logger = logging.getLogger(__name__)

RUNTIME_KEY = web.AppKey("runtime", Runtime)


class AccessLog(AccessLogger):
    """aiohttp's access line, at INFO only for answers that went wrong (4xx, 5xx): the line
    for every answered request is DEBUG. Formatting one costs a tenth of a `/pim roles`, and
    under load the lines that matter would drown in the rest."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        level = logging.INFO if response.status >= 400 else logging.DEBUG
        if not self.logger.isEnabledFor(level):
            return
        try:
            values: list[str] = []
            extra: dict[str, Any] = {}
            for key, value in self._format_line(request, response, time):
                values.append(value)
                if isinstance(key, str):
                    extra[key] = value
                else:  # ("request_header", "Referer") and the like, as aiohttp gives them
                    extra.setdefault(key[0], {})[key[1]] = value
            self.logger.log(level, self._log_format % tuple(values), extra=extra)
        except Exception:
            self.logger.exception("Error in logging")


async def healthz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME_KEY]
    try:
        async with runtime.uow.read() as s:  # a health probe never waits for the write lock
            await s.execute(text("SELECT 1"))
        current, head = await revision_status(runtime.uow.engine)
        failed = await _grants_failed(runtime) if current == head else None
    except Exception as err:  # health must answer, whatever is broken
        logger.warning("health check: database unreachable: %s", err)
        return web.json_response(
            {"status": "error", "database": "unreachable", "error": type(err).__name__},
            status=503,
        )
    ok = current == head
    return web.json_response(
        {"status": "ok" if ok else "degraded", "database": runtime.uow.dialect,
         "schema": current, "schema_head": head,
         "transports": [t.name for t in runtime.transports], "grants_failed": failed},
        status=200 if ok else 503,
    )


async def _grants_failed(runtime: Runtime) -> int:
    async with runtime.uow.read() as s:
        return await grants_failed(s)


def make_app(runtime: Runtime) -> web.Application:
    app = web.Application()
    app[RUNTIME_KEY] = runtime
    app.router.add_get("/healthz", healthz)
    return app
