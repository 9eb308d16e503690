"""`pim-bot console`: a script piped in (stdin not a tty), one command per line, echoed as
`EMAIL> command`, followed by what that person sees."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass

import pytest
from clihelp import EXAMPLE_POLICY, Run, assert_no_traceback, clean_env, pim_command

_PROMPT = re.compile(r"^(\S+@\S+)> (.*)$")


@dataclass
class Block:
    who: str
    command: str
    lines: list[str]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


_STARTUP_NOTE = "🔔 You are now eligible for "


def transcript(stdout: str) -> list[Block]:
    """Cut the console's output at each echoed prompt. Lines before the first prompt go into a
    block with an empty command. The one-line "you are now eligible" notifications that applying
    the policy at start-up causes arrive whenever delivery gets to them, so they are dropped."""
    blocks = [Block("", "", [])]
    for line in stdout.splitlines():
        if line.startswith(_STARTUP_NOTE):
            continue
        found = _PROMPT.match(line)
        if found:
            blocks.append(Block(found.group(1), found.group(2), []))
        else:
            blocks[-1].lines.append(line)
    return blocks


def only(blocks: list[Block], command: str, who: str | None = None, nth: int = 0) -> Block:
    matching = [b for b in blocks if b.command == command and (who is None or b.who == who)]
    assert len(matching) > nth, f"no block #{nth} for {who}> {command}"
    return matching[nth]


def role_line(block: Block, role_id: str) -> str:
    lines = [line for line in block.lines if line.split()[:1] == [role_id]]
    assert len(lines) == 1, block.text
    return lines[0]


def console(
    run_pim: Run, db: str, script: str, *, actor: str = "bob@contoso.com", timeout: float = 90
):
    return run_pim(
        "console",
        "--as",
        actor,
        "--policy",
        str(EXAMPLE_POLICY),
        db=db,
        input=script,
        timeout=timeout,
    )


LOOP = """\
activate demo-short 10s testing expiry
wait 1s
as carol@contoso.com
approve $last
wait 1s
as bob@contoso.com
roles
wait 12s
roles
"""


def test_ask_approve_active_expire(run_pim: Run, db_url: str) -> None:
    """The whole loop with demo-short (needs Carol, 10s minimum), on SQLite and PostgreSQL."""
    result = console(run_pim, db_url, LOOP)
    assert result.returncode == 0, result.stderr
    assert_no_traceback(result.stdout, result.stderr)
    blocks = transcript(result.stdout)

    # Every line of the script is echoed with the identity that ran it.
    assert [(b.who, b.command) for b in blocks[1:]] == [
        ("bob@contoso.com", "activate demo-short 10s testing expiry"),
        ("bob@contoso.com", "wait 1s"),
        ("bob@contoso.com", "as carol@contoso.com"),
        ("carol@contoso.com", "approve $last"),
        ("carol@contoso.com", "wait 1s"),
        ("carol@contoso.com", "as bob@contoso.com"),
        ("bob@contoso.com", "roles"),
        ("bob@contoso.com", "wait 12s"),
        ("bob@contoso.com", "roles"),
    ]

    # Bob asks: the request waits for approval and gets a short id.
    asked = only(blocks, "activate demo-short 10s testing expiry")
    found = re.search(
        r"Request (R-[0-9A-Z]{4,8}) for Demo Short Role is waiting for approval\.", asked.text
    )
    assert found, asked.text
    rid = found.group(1)
    # One notice, not two: the answer itself says how to cancel and until when approvers
    # can decide; no "submitted" notification repeats it.
    assert f"→ cancel {rid} (approvers can decide until" in asked.text
    assert f"🔔 Request {rid}" not in result.stdout
    assert result.stdout.count(f"Request {rid} for Demo Short Role is waiting") == 1

    # Carol had nothing on screen; switching to her shows the approval card that was waiting.
    switched = only(blocks, "as carol@contoso.com")
    assert switched.lines[0] == "You are now carol@contoso.com."
    card = switched.text
    assert "🔔 Bob Builder asks for Demo Short Role for 10s." in card
    assert f"Request   {rid} (PendingApproval)" in card
    assert "Who       Bob Builder <bob@contoso.com>" in card
    assert "Why       testing expiry" in card
    # approver_justification is false for demo-short: the hint needs no reason.
    assert f"→ approve {rid}   |   deny {rid} <reason>" in card
    # Bob's own notifications are not shown to Carol.
    assert "waiting for approval (until" not in card

    # `$last` stands for the request id on screen.
    approved = only(blocks, "approve $last")
    assert approved.lines[0] == f"You approved {rid}: Bob Builder gets Demo Short Role."

    # Back as Bob: the approval and the activation were waiting for him.
    back = only(blocks, "as bob@contoso.com")
    assert back.lines[0] == "You are now bob@contoso.com."
    assert f"🔔 Carol Chen approved your request {rid} for Demo Short Role." in back.text
    assert "🔔 Demo Short Role is active until" in back.text

    active = only(blocks, "roles", nth=0)
    assert active.lines[0] == "Your roles:"
    assert "ACTIVE until" in role_line(active, "demo-short")
    assert "eligible" in role_line(active, "helpdesk-admin")

    # Ten seconds later the access ends by itself, and Bob is told.
    waited = only(blocks, "wait 12s")
    assert "🔔 Your Demo Short Role access has ended." in waited.text
    after = only(blocks, "roles", nth=1)
    line = role_line(after, "demo-short")
    assert "ACTIVE" not in line and "eligible" in line
    assert result.stdout.count("access has ended") == 1


@pytest.fixture
def sqlite_only(sqlite_url: str) -> str:
    return sqlite_url


def test_bad_commands_get_one_line_and_usage(run_pim: Run, sqlite_only: str) -> None:
    script = """\
activate demo-short 5x oops
frobnicate now
activate demo-short 1d too long
approve R-ZZZZ
requests
whoami
"""
    result = console(run_pim, sqlite_only, script)
    assert result.returncode == 0, result.stderr
    assert_no_traceback(result.stdout, result.stderr)
    blocks = transcript(result.stdout)

    bad_duration = only(blocks, "activate demo-short 5x oops")
    assert bad_duration.lines == [
        "✗ '5x' is not a duration; use e.g. 90m, 2h, 1h30m, 1d or PT2H",
        "  usage: activate ROLE [DURATION] [ticket:REF] [JUSTIFICATION…]",
    ]
    unknown = only(blocks, "frobnicate now")
    assert len(unknown.lines) == 2, unknown.text
    assert unknown.lines[0] == "✗ unknown command 'frobnicate'"
    assert unknown.lines[1].startswith("  usage: one of help, roles, activate")

    too_long = only(blocks, "activate demo-short 1d too long")
    assert too_long.lines == ["✗ Demo Short Role can be activated for 10s to 5m; you asked for 1d."]
    no_such = only(blocks, "approve R-ZZZZ")
    assert len(no_such.lines) == 1 and no_such.lines[0].startswith("✗ ")
    assert "R-ZZZZ" in no_such.lines[0]

    # Refused commands left nothing half-written: Bob has no pending request.
    pending = only(blocks, "requests")
    assert not any(re.search(r"R-[0-9A-Z]{4,8}", line) for line in pending.lines), pending.text
    assert only(blocks, "whoami").lines == ["You are bob@contoso.com."]


def test_help_and_console_words(run_pim: Run, sqlite_only: str) -> None:
    script = (
        "help\nas\nas   \n"
        + """\
whoami
wait soon
as CAROL@contoso.com
whoami
quit
roles
"""
    )
    result = console(run_pim, sqlite_only, script)
    assert result.returncode == 0, result.stderr
    assert_no_traceback(result.stdout, result.stderr)
    blocks = transcript(result.stdout)

    helped = only(blocks, "help").text
    for usage in (
        "roles",
        "activate ROLE [DURATION] [ticket:REF] [JUSTIFICATION…]",
        "requests",
        "cancel REQUEST_ID",
        "approvals",
        "approve REQUEST_ID [JUSTIFICATION…]",
        "deny REQUEST_ID JUSTIFICATION…",
        "deactivate ROLE",
        "audit [USER|ROLE] [since DURATION]",
    ):
        assert re.search(rf"^{re.escape(usage)} — ", helped, re.MULTILINE), usage
    # The console's own words are discoverable from `help`.
    assert "as EMAIL" in helped and "wait DURATION" in helped and "quit" in helped

    # `as` without an email refuses in one line and keeps the identity.
    assert only(blocks, "as").lines == ["✗ Say who: as EMAIL"]
    assert only(blocks, "whoami", nth=0).lines == ["You are bob@contoso.com."]
    bad_wait = only(blocks, "wait soon")
    assert bad_wait.lines[0].startswith("✗ 'soon' is not a duration")
    assert bad_wait.lines[1] == "  usage: wait DURATION"

    # Emails are case-insensitive; the new identity shows in the prompt.
    assert only(blocks, "as CAROL@contoso.com").lines[0] == "You are now carol@contoso.com."
    assert only(blocks, "whoami", who="carol@contoso.com").lines == ["You are carol@contoso.com."]

    # `quit` ends the session: the line after it never runs.
    assert blocks[-1].command == "quit"
    assert all(b.command != "roles" for b in blocks)


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_interactive_terminal_shows_banner_and_prompt(sqlite_only: str, workdir) -> None:
    """With a terminal on stdin the console greets, prompts, and does not echo the command."""
    controller, terminal = os.openpty()
    try:
        proc = subprocess.Popen(
            [*pim_command(), "console", "--as", "Bob@Contoso.com"],
            cwd=workdir,
            env=clean_env(sqlite_only),
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        os.write(controller, b"whoami\nquit\n")
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    finally:
        os.close(controller)
        os.close(terminal)
    assert proc.returncode == 0, err
    assert_no_traceback(out, err)
    assert out.startswith("pim-bot console as bob@contoso.com. Type `help`")
    assert "bob@contoso.com> You are bob@contoso.com.\n" in out
