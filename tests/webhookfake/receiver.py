"""A webhook receiver as a protected system would run one.

Every request is verified with `standardwebhooks` (a bad signature gets 401 and is counted).
What it answers is scripted: `script` is a queue of behaviours for the next requests
("429", "503", "500", "400", "hang"), then 200 (after `delay`); `per_second` throttles like Graph (429 with
Retry-After); `reject` names grant ids always refused with 400. `deliveries` lists every
event it accepted; a receiver acts on a `webhook-id` once, so `effects` counts distinct ids.
"""

from __future__ import annotations

import asyncio
import base64
import math
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET = "whsec_" + base64.b64encode(b"grant-webhook-test-secret-32byte").decode()


@dataclass(frozen=True)
class Delivery:
    webhook_id: str
    type: str
    grant_id: str
    body: dict[str, Any]


@dataclass
class WebhookReceiver:
    secret: str = SECRET
    script: list[str] = field(default_factory=list)
    per_second: float | None = None
    reject: set[str] = field(default_factory=set)
    hang_seconds: float = 30.0
    delay: float = 0.0  # after acting on an event, before answering: calls stay in flight
    deliveries: list[Delivery] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    bad_signatures: int = 0
    root: str = ""
    _runner: web.AppRunner | None = None
    _recent: deque[float] = field(default_factory=deque)

    @property
    def url(self) -> str:
        return f"{self.root}/pim"

    def effects(self) -> Counter[tuple[str, str]]:
        """(grant id, event type) -> how many distinct webhook ids acted on it."""
        distinct = {(d.webhook_id, d.grant_id, d.type) for d in self.deliveries}
        return Counter((grant, kind) for _, grant, kind in distinct)

    def repeats(self) -> int:
        """Deliveries of a webhook id already received (a resend after a crash)."""
        return len(self.deliveries) - len({d.webhook_id for d in self.deliveries})

    async def __aenter__(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/pim", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.root = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = Webhook(self.secret).verify(raw, dict(request.headers))
        except WebhookVerificationError:
            self.bad_signatures += 1
            return self._answer("401", web.Response(status=401))
        behaviour = self.script.pop(0) if self.script else "ok"
        if body["data"]["grant_id"] in self.reject:
            behaviour = "400"
        if behaviour == "ok" and (wait := self._throttle()) is not None:
            return self._answer("429", web.Response(status=429, headers={"Retry-After": str(wait)}))
        if behaviour == "hang":
            self.answers["hang"] += 1
            await asyncio.sleep(self.hang_seconds)
            return web.Response(status=200)  # too late: the sender gave up long ago
        if behaviour in ("429", "503"):
            return self._answer(
                behaviour, web.Response(status=int(behaviour), headers={"Retry-After": "1"})
            )
        if behaviour != "ok":
            return self._answer(behaviour, web.Response(status=int(behaviour), text="no"))
        self.deliveries.append(
            Delivery(request.headers["webhook-id"], body["type"], body["data"]["grant_id"], body)
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        return self._answer("200", web.json_response({"ok": True}))

    def _throttle(self) -> int | None:
        """Seconds to wait (Retry-After) when `per_second` were accepted in the last second,
        else None: a sliding window, like Graph's per-app limits."""
        if not self.per_second:
            return None
        now = time.monotonic()
        while self._recent and self._recent[0] <= now - 1.0:
            self._recent.popleft()
        if len(self._recent) >= self.per_second:
            return max(1, math.ceil(self._recent[0] + 1.0 - now))
        self._recent.append(now)
        return None

    def _answer(self, key: str, response: web.Response) -> web.Response:
        self.answers[key] += 1
        return response


class ThreadedReceiver:
    """A WebhookReceiver on its own event loop in a thread, for tests that block on a
    subprocess (`run_pim`) while the receiver answers it."""

    def __init__(self, **options: Any) -> None:
        self.receiver = WebhookReceiver(**options)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.receiver.__aenter__(), self._loop).result(10)
        return self.receiver

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.receiver.__aexit__(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
