"""Render Adaptive Cards with the official JavaScript renderer in headless Chromium.

No browser-automation package: Chromium (Debian's `chromium`) is started with
`--remote-debugging-port=0`, the port it picked is read from `DevToolsActivePort` in its fresh
profile directory, and the DevTools protocol is spoken over aiohttp's websocket client.
`render.html`, the renderer's browser build (`node_modules/adaptivecards/dist/`) and markdown-it
(which the renderer picks up to format TextBlock markdown, as Teams does), both installed by
`npm ci` in this directory, are served by an aiohttp static server on 127.0.0.1, port 0.

    async with CardRenderer() as renderer:
        await renderer.render(card)            # {"warnings", "html_length", "text", ...}
        await renderer.click(card, "Approve", {"reason": "ok"})   # {"verb", "data", ...}

`SyncCardRenderer` runs the same on a loop of its own in a thread, for plain test functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

# A button to click on the way: its title, or (title, match) where match may name its "id".
Via = str | tuple[str, dict[str, str]]
HERE = Path(__file__).resolve().parent
MODULES = HERE / "node_modules"
RENDERER_JS = MODULES / "adaptivecards" / "dist" / "adaptivecards.min.js"
MARKDOWN_JS = MODULES / "markdown-it" / "dist" / "browser" / "markdown-it.umd.min.js"
PAGE = HERE / "render.html"
FILES = {
    "/render.html": PAGE,
    "/adaptivecards.min.js": RENDERER_JS,
    "/markdown-it.min.js": MARKDOWN_JS,
}  # what the page may load
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
)
START_TIMEOUT = 30.0
CALL_TIMEOUT = 30.0


class RendererUnavailable(Exception):
    """Chromium or the npm package is not installed."""


class RenderError(Exception):
    """The page threw while rendering or clicking."""


def find_chromium() -> str:
    for name in (os.environ.get("PIM_CHROMIUM"), "chromium", "chromium-browser"):
        path = shutil.which(name) if name else None
        if path:
            return path
    raise RendererUnavailable("no chromium binary on PATH (apt-get install chromium)")


def check_installed() -> str:
    """The chromium binary, or RendererUnavailable saying what is missing."""
    for path in (RENDERER_JS, MARKDOWN_JS):
        if not path.is_file():
            raise RendererUnavailable(
                f"{path.relative_to(HERE)} is missing (cd tests/cardrender && npm ci)"
            )
    return find_chromium()


class CardRenderer:
    """One headless Chromium with one page that holds the renderer."""

    def __init__(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._session_id: str | None = None
        self.stderr_tail = b""

    async def __aenter__(self) -> CardRenderer:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    # --- public ---------------------------------------------------------------------------------

    async def render(self, card: dict[str, Any]) -> dict[str, Any]:
        """{"warnings": [...], "html_length": int, "text": str, "actions": [titles],
        "inputs": [ids]} for one card."""
        return await self._call("renderCard", card)

    async def click(
        self,
        card: dict[str, Any],
        title: str,
        inputs: dict[str, str] | None = None,
        match: dict[str, str] | None = None,
        via: tuple[Via, ...] = (),
    ) -> dict[str, Any]:
        """Render `card`, click `via` (titles, or (title, match) pairs), type `inputs` into
        it, then click the button `title` (the one whose data contains `match`). Returns {"warnings", "executed": {type, title, verb,
        data} or None}."""
        steps = [list(step) if isinstance(step, tuple) else step for step in via]
        return await self._call("clickAction", card, title, inputs or {}, match or {}, steps)

    # --- start ----------------------------------------------------------------------------------

    async def _start(self) -> None:
        chromium = check_installed()
        base = await self._serve()
        profile = Path(
            self._stack.enter_context(tempfile.TemporaryDirectory(prefix="pim-cardrender-"))
        )
        port_file = profile / "DevToolsActivePort"
        stderr = profile / "chromium.log"
        with stderr.open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
                "about:blank",
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._stack.push_async_callback(self._stop, proc, stderr)
        browser_ws = await self._devtools_address(proc, port_file, stderr)
        http = await self._stack.enter_async_context(aiohttp.ClientSession())
        self._ws = await self._stack.enter_async_context(
            http.ws_connect(browser_ws, max_msg_size=0, autoping=False)
        )
        reader = asyncio.create_task(self._read(self._ws))
        self._stack.push_async_callback(self._cancel, reader)
        self._stack.push_async_callback(self._close_browser)  # runs first, while ws is open
        target = await self._send("Target.createTarget", {"url": "about:blank"})
        attached = await self._send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        self._session_id = attached["sessionId"]
        await self._send("Page.navigate", {"url": f"{base}/render.html"})
        await self._wait_ready()

    async def _serve(self) -> str:
        app = web.Application()

        async def serve(request: web.Request) -> web.FileResponse:
            return web.FileResponse(FILES[request.path])

        for route in FILES:
            app.router.add_get(route, serve)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def _devtools_address(
        self, proc: asyncio.subprocess.Process, port_file: Path, stderr: Path
    ) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while loop.time() < deadline:
            if proc.returncode is not None:
                raise RendererUnavailable(
                    f"chromium exited with {proc.returncode}: {_tail(stderr)}"
                )
            lines = port_file.read_text().splitlines() if port_file.exists() else []
            if len(lines) >= 2 and lines[0].isdigit():
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            await asyncio.sleep(0.02)
        raise TimeoutError(
            f"chromium wrote no DevToolsActivePort in {START_TIMEOUT}s: {_tail(stderr)}"
        )

    async def _wait_ready(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while loop.time() < deadline:
            ready = await self._evaluate(
                "window.harnessReady === true && typeof AdaptiveCards === 'object'"
            )
            if ready:
                return
            await asyncio.sleep(0.02)
        raise TimeoutError("render.html did not load the adaptivecards renderer")

    async def _close_browser(self) -> None:
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):  # Chromium drops the socket as it closes
                await asyncio.wait_for(self._send("Browser.close"), 5)

    async def _stop(self, proc: asyncio.subprocess.Process, stderr: Path) -> None:
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        self.stderr_tail = stderr.read_bytes()[-4000:] if stderr.exists() else b""

    @staticmethod
    async def _cancel(task: asyncio.Task[None]) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # --- DevTools protocol ----------------------------------------------------------------------

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                message = json.loads(msg.data)
                future = self._pending.pop(message.get("id", -1), None)
                if future is not None and not future.done():
                    future.set_result(message)
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("DevTools connection closed"))
            self._pending.clear()

    async def _send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        assert self._ws is not None
        msg_id = next(self._ids)
        message: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if self._session_id and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self._session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        await self._ws.send_str(json.dumps(message))
        reply = await asyncio.wait_for(future, CALL_TIMEOUT)
        if "error" in reply:
            raise RenderError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def _evaluate(self, expression: str) -> Any:
        result = await self._send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise RenderError(text)
        return result["result"].get("value")

    async def _call(self, function: str, *args: Any) -> Any:
        call = ", ".join(json.dumps(arg, ensure_ascii=False) for arg in args)
        return await self._evaluate(f"window.{function}({call})")


def _tail(path: Path) -> str:
    return path.read_bytes()[-2000:].decode(errors="replace") if path.exists() else ""


class SyncCardRenderer:
    """CardRenderer on an event loop in its own thread, with blocking methods."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, daemon=True, name="cardrender"
        )
        self._renderer = CardRenderer()

    def __enter__(self) -> SyncCardRenderer:
        self._thread.start()
        try:
            self._run(self._renderer.__aenter__())
        except BaseException:
            self._shutdown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._run(self._renderer.__aexit__(None, None, None))
        finally:
            self._shutdown()

    def render(self, card: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._run(self._renderer.render(card))
        return result

    def click(
        self,
        card: dict[str, Any],
        title: str,
        inputs: dict[str, str] | None = None,
        match: dict[str, str] | None = None,
        via: tuple[Via, ...] = (),
    ) -> dict[str, Any]:
        result: dict[str, Any] = self._run(self._renderer.click(card, title, inputs, match, via))
        return result

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _shutdown(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
