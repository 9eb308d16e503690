"""The one aiohttp server: health now; Slack and Teams mount their routes on it."""

from __future__ import annotations

import logging

from aiohttp import web
from sqlalchemy import text

from bot.runtime import Runtime
from storage.migrate import revision_status

logger = logging.getLogger(__name__)

RUNTIME_KEY = web.AppKey("runtime", Runtime)


async def healthz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME_KEY]
    try:
        async with runtime.uow.read() as s:  # a health probe never waits for the write lock
            await s.execute(text("SELECT 1"))
        current, head = await revision_status(runtime.uow.engine)
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
         "transports": [t.name for t in runtime.transports]},
        status=200 if ok else 503,
    )


def make_app(runtime: Runtime) -> web.Application:
    app = web.Application()
    app[RUNTIME_KEY] = runtime
    app.router.add_get("/healthz", healthz)
    return app
