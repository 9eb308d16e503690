"""The console keeps the session going when something unexpected breaks a command."""

from __future__ import annotations

import io

from bot.config import Settings
from bot.console import Console
from bot.runtime import Runtime


async def test_unexpected_failure_is_one_line_and_the_session_goes_on(tmp_path):
    # A database with no tables: every engine call fails in a way no rule anticipates.
    runtime = Runtime.build(Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}))
    out = io.StringIO()
    console = Console(runtime, actor="bob@contoso.com", stdout=out)
    try:
        assert await console.handle("roles") is True
        assert await console.handle("whoami") is True
    finally:
        await runtime.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "✗ Something went wrong (OperationalError); nothing was changed."
    assert lines[1] == "You are bob@contoso.com."
    assert "Traceback" not in out.getvalue()
