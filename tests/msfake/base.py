"""What the Microsoft fakes share: HTTPS on 127.0.0.1 with the test CA, a record of calls,
and faults on demand (a throttle of N requests/s, queued failures, hangs)."""

from __future__ import annotations

import asyncio
import math
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Call:
    method: str
    path: str  # path and query as sent
    body: Any
    headers: dict[str, str]
    at: float
    status: int = 0


@dataclass
class Fault:
    match: str  # a substring of "METHOD /path?query"; "" matches every request
    status: int = 500
    code: str = "InternalServerError"
    retry_after: float | None = None
    hang: float | None = None  # seconds to sit on the request before answering


@dataclass
class Throttle:
    """A token bucket: `rate` requests a second, bursts of `burst`."""

    rate: float
    burst: float
    tokens: float = 0.0
    at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self) -> float:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


CALL = web.RequestKey("call", Call)  # the recorded Call of the request being answered


def error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )


class HttpsFake:
    """Base of each fake: subclasses add routes in `routes(app)`."""

    name = "fake"

    def __init__(self, *, server_ssl: ssl.SSLContext) -> None:
        self._ssl = server_ssl
        self._runner: web.AppRunner | None = None
        self.root = ""  # https://127.0.0.1:PORT
        self.calls: list[Call] = []
        self.faults: deque[Fault] = deque()
        self.throttle: Throttle | None = None

    # -- faults ------------------------------------------------------------------------------
    def fail_next(
        self,
        match: str = "",
        *,
        status: int = 500,
        code: str | None = None,
        retry_after: float | None = None,
        hang: float | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` requests matching `match` with `status` (429/503 add
        Retry-After), or sit on them for `hang` seconds first."""
        default = {
            429: "TooManyRequests",
            503: "ServiceUnavailable",
            403: "Authorization_RequestDenied",
        }.get(status, "InternalServerError")
        if status in (429, 503) and retry_after is None:
            retry_after = 1
        for _ in range(times):
            self.faults.append(Fault(match, status, code or default, retry_after, hang))

    def hang_next(self, match: str = "", *, seconds: float = 30.0) -> None:
        self.fail_next(match, status=504, code="GatewayTimeout", hang=seconds)

    def limit(self, rate: float | None, *, burst: float | None = None) -> None:
        """Allow `rate` requests a second (None: no limit); beyond, 429 with Retry-After."""
        self.throttle = Throttle(rate, burst or max(1.0, rate)) if rate else None

    def throttled(self) -> int:
        return sum(1 for c in self.calls if c.status == 429)

    # -- lifecycle ---------------------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self) -> str:
        app = web.Application(middlewares=[self._middleware])
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl)
        await site.start()
        self.root = f"https://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.root

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- every request -----------------------------------------------------------------------
    def _fault_for(self, line: str) -> Fault | None:
        for fault in self.faults:
            if fault.match in line:
                self.faults.remove(fault)
                return fault
        return None

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            body = (
                await request.json()
                if request.content_type == "application/json"
                else dict(await request.post())
            )
        call = Call(
            request.method,
            request.path_qs,
            body,
            {k.lower(): v for k, v in request.headers.items()},
            time.monotonic(),
        )
        self.calls.append(call)
        response = await self._answer(request, handler, call)
        call.status = response.status
        return response

    async def _answer(self, request: web.Request, handler: Any, call: Call) -> web.StreamResponse:
        fault = self._fault_for(f"{request.method} {request.path_qs}")
        if fault is not None:
            if fault.hang:
                await asyncio.sleep(fault.hang)
            headers = (
                {"Retry-After": str(math.ceil(fault.retry_after))}
                if fault.retry_after is not None
                else None
            )
            return error(fault.status, fault.code, f"{self.name}: injected {fault.status}", headers)
        if self.throttle is not None:
            wait = self.throttle.take()
            if wait:
                return error(
                    429,
                    "TooManyRequests",
                    "Too many requests.",
                    {"Retry-After": str(max(1, math.ceil(wait)))},
                )
        request[CALL] = call
        return await handler(request)
