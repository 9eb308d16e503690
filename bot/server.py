"""The one aiohttp server: health, readiness and metrics; Slack and Teams mount their routes
on it."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.web_log import AccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse
from sqlalchemy import text

from bot.logs import new_request
from bot.metrics import CONTENT_TYPE
from bot.runtime import Runtime
from storage.grant_claims import grants_failed
from storage.migrate import revision_status

logger = logging.getLogger(__name__)

RUNTIME_KEY = web.AppKey("runtime", Runtime)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _database(runtime: Runtime) -> tuple[str | None, str | None]:
    async with runtime.uow.read() as s:  # a probe never waits for the write lock
        await s.execute(text("SELECT 1"))
    return await revision_status(runtime.uow.engine)


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
    """Alive: the process answers. The database is reported, but only /readyz fails on it, so
    an orchestrator does not restart a healthy process while the database is away."""
    runtime = request.app[RUNTIME_KEY]
    body: dict[str, object] = {
        "status": "ok",
        "database": runtime.uow.dialect,
        "transports": [t.name for t in runtime.transports],
    }
    try:
        current, head = await _database(runtime)
    except Exception as err:  # health must answer, whatever is broken
        body.update(status="degraded", database="unreachable", error=type(err).__name__)
        return web.json_response(body)
    body.update(schema=current, schema_head=head)
    if current != head:
        body["status"] = "degraded"
        return web.json_response(body)
    try:
        body["grants_failed"] = await _grants_failed(runtime)
    except Exception as err:  # health must answer, whatever is broken
        body.update(status="degraded", error=type(err).__name__)
    return web.json_response(body)


async def readyz(request: web.Request) -> web.Response:
    """Ready: the database answers and its schema is the code's newest migration."""
    runtime = request.app[RUNTIME_KEY]
    try:
        current, head = await _database(runtime)
    except Exception as err:
        logger.warning("readiness: database unreachable: %s", err)
        return web.json_response(
            {"ready": False, "reason": "database unreachable", "error": type(err).__name__},
            status=503,
        )
    if current != head:
        return web.json_response(
            {
                "ready": False,
                "reason": "migrations not current",
                "schema": current,
                "schema_head": head,
            },
            status=503,
        )
    return web.json_response({"ready": True, "schema": current})


async def metrics(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME_KEY]
    try:
        async with runtime.uow.read() as s:
            await runtime.metrics.refresh(s, runtime.clock.now())
    except Exception as err:  # the counters are still worth serving
        logger.warning("metrics: outbox gauges not refreshed: %s", err)
    return web.Response(body=runtime.metrics.render(), headers={"Content-Type": CONTENT_TYPE})


@web.middleware
async def _observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give each request an id (the caller's X-Request-Id, else a new one) for the log, and
    time it by route: the route's pattern, never the raw path, so labels stay few."""
    rid = new_request(request.headers.get("X-Request-Id"))
    started = time.perf_counter()
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = rid
        return response
    except web.HTTPException as err:
        status = err.status
        raise
    finally:
        request.app[RUNTIME_KEY].metrics.observe_request(route, status, started)


async def _grants_failed(runtime: Runtime) -> int:
    async with runtime.uow.read() as s:
        return await grants_failed(s)


def make_app(runtime: Runtime) -> web.Application:
    app = web.Application(middlewares=[_observe])
    app[RUNTIME_KEY] = runtime
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
