"""The console as a new user meets it: each notice once, under the command that caused it;
inboxes that outlive the run; `wait` that lets a day pass; Ctrl-C that cancels, not quits."""

from __future__ import annotations

import os
import select
import subprocess
import time

import pytest
from clihelp import Run, assert_no_traceback, clean_env, pim_command
from test_console import console, only, transcript


def ran(result) -> list:
    assert result.returncode == 0, result.stderr
    assert_no_traceback(result.stdout, result.stderr)
    return transcript(result.stdout)


def test_each_notice_once_and_under_its_command(run_pim: Run, sqlite_url: str) -> None:
    blocks = ran(
        console(
            run_pim,
            sqlite_url,
            """\
activate helpdesk-admin 1h printers
wait 10m
deactivate helpdesk-admin
activate demo-short 1m trying
as carol@contoso.com
approve $last
as bob@contoso.com
""",
        )
    )
    asked = only(blocks, "activate helpdesk-admin 1h printers")
    assert len(asked.lines) == 1, asked.text  # no second "is active" notice after the answer
    assert asked.lines[0].startswith("Helpdesk Administrator is active now. Request R-")
    assert only(blocks, "deactivate helpdesk-admin").lines == [
        "Helpdesk Administrator is deactivated. Your access has ended."
    ]
    pending = only(blocks, "activate demo-short 1m trying")
    assert len(pending.lines) == 2 and "→ cancel R-" in pending.lines[1], pending.text
    # Carol's card was waiting; her approval's consequences reach Bob when he is back, and
    # nothing of them showed under Carol's command (no echo of her own decision).
    assert "🔔 Bob Builder asks for Demo Short Role" in only(blocks, "as carol@contoso.com").text
    assert only(blocks, "approve $last").lines[0].startswith("You approved R-")
    assert len(only(blocks, "approve $last").lines) == 1
    back = only(blocks, "as bob@contoso.com").text
    assert "approved your request" in back and "Demo Short Role is active until" in back


def test_an_inbox_outlives_the_run(run_pim: Run, sqlite_url: str) -> None:
    first = ran(console(run_pim, sqlite_url, "activate demo-short 1m trying\n"))
    rid = only(first, "activate demo-short 1m trying").lines[0].split()[1]
    assert rid.startswith("R-")
    later = ran(console(run_pim, sqlite_url, "whoami\n", actor="carol@contoso.com"))
    # Carol was never at the console while Bob asked: her card waited in the database.
    assert "🔔 Bob Builder asks for Demo Short Role for 1m." in later[0].text
    assert f"→ approve {rid}" in later[0].text


def test_wait_lets_a_day_pass_and_needs_a_duration(run_pim: Run, sqlite_url: str) -> None:
    started = time.monotonic()
    blocks = ran(
        console(
            run_pim,
            sqlite_url,
            """\
activate helpdesk-admin 1h printers
wait 1d
roles
wait
""",
        )
    )
    waited = only(blocks, "wait 1d").text
    # The warning 15 minutes before the end comes before the end, both within the day.
    assert "🔔 Your Helpdesk Administrator access ends in 1" in waited  # 15m, give or take
    assert waited.index("access ends in") < waited.index("access has ended")
    assert "ACTIVE" not in only(blocks, "roles").text
    assert only(blocks, "wait").lines == [
        "✗ Say how long: wait DURATION",
        "  usage: wait DURATION (e.g. wait 30s, wait 1d)",
    ]
    assert time.monotonic() - started < 600  # not a real day (nor the old silent hour)


def _read_until(fd: int, wanted: str, seen: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while wanted not in "".join(seen):
        left = deadline - time.monotonic()
        assert left > 0, f"never saw {wanted!r} in {''.join(seen)[-2000:]!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                seen.append(os.read(fd, 65536).decode("utf-8", "replace"))
            except OSError:  # the terminal closed
                return


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_ctrl_c_at_the_prompt_clears_the_line(sqlite_url: str, workdir) -> None:
    """In a real terminal: Ctrl-C drops what was typed and the session goes on."""
    controller, terminal = os.openpty()
    proc = subprocess.Popen(
        [*pim_command(), "console", "--as", "bob@contoso.com"],
        cwd=workdir,
        env={**clean_env(sqlite_url), "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"},
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    seen: list[str] = []
    try:
        _read_until(controller, "bob@contoso.com>", seen)
        os.write(controller, b"deactivate something")
        os.write(controller, b"\x03")
        time.sleep(0.5)
        os.write(controller, b"whoami\r")
        _read_until(controller, "You are bob@contoso.com.", seen)
        os.write(controller, b"quit\r")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(controller)
        os.close(terminal)
    screen = "".join(seen)
    assert "not active" not in screen and "No role called" not in screen  # never ran
    assert "Traceback" not in screen
