"""Ctrl-C during `wait` cancels the wait, not the console."""

from __future__ import annotations

import asyncio
import io

from bot.config import Settings
from bot.console import Console
from bot.runtime import Runtime
from handlers.clock import ShiftedClock
from handlers.policy import apply_policy

POLICY = """
principals: [{email: bob@contoso.com, name: Bob Builder}]
roles: [{id: quick, name: Quick Role, settings: {max_duration: 1h, require_justification: false}}]
assignments: [{principal: bob@contoso.com, role: quick, type: eligible}]
"""


async def test_interrupt_cancels_the_wait_and_the_session_goes_on(sqlite_url: str) -> None:
    runtime = Runtime.build(Settings.from_env({"DATABASE_URL": sqlite_url}), clock=ShiftedClock())
    await runtime.prepare()
    await apply_policy(runtime.uow, runtime.clock, text=POLICY, source="t.yaml")
    out = io.StringIO()
    console = Console(runtime, actor="bob@contoso.com", stdout=out)
    runtime.start_background([console.transport])
    try:
        started = runtime.clock.now()
        waiting = asyncio.create_task(console.handle("wait 3650d"))
        while console._waiting is None:
            await asyncio.sleep(0)
        console.interrupt()  # what Ctrl-C (SIGINT) calls
        assert await waiting is True
        assert await console.handle("whoami") is True
    finally:
        await runtime.close()
    lines = [line for line in out.getvalue().splitlines() if not line.startswith("🔔")]
    assert lines[0].startswith("Wait canceled; it is "), lines
    assert lines[1] == "You are bob@contoso.com."
    assert (runtime.clock.now() - started).days < 3650
