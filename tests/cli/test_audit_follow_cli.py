"""`pim-bot audit export --follow`: a SIEM feed of JSON lines that picks up new events as they
are committed, resumes with --since-id, and stops cleanly on SIGTERM or Ctrl-C."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from clihelp import Run, assert_no_traceback, clean_env, pim_command


class Follower:
    """The follow process, with its stdout read line by line on a thread."""

    def __init__(self, db: str, cwd: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*pim_command(), "audit", "export", "--follow", "--interval", "0.2", *args],
            cwd=cwd,
            env=clean_env(db),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def events(self, n: int, timeout: float = 30) -> list[dict[str, Any]]:
        deadline, got = time.monotonic() + timeout, []
        while len(got) < n:
            got.append(json.loads(self.lines.get(timeout=max(0.1, deadline - time.monotonic()))))
        return got

    def stop(self, sig: int) -> tuple[int, str]:
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=20)
        finally:
            self.proc.kill()
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()


@pytest.fixture
def follow(sqlite_url: str, workdir: Path):
    started: list[Follower] = []

    def start(*args: str) -> Follower:
        started.append(Follower(sqlite_url, workdir, *args))
        return started[-1]

    yield start
    for f in started:
        f.proc.kill()
        f.proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_follow_streams_new_events_and_stops_cleanly(
    run_pim: Run, sqlite_url: str, follow, sig: int
) -> None:
    assert run_pim("policy", "apply", "policy.yaml", db=sqlite_url).returncode == 0
    feed = follow()
    backlog = feed.events(14)
    assert [e["id"] for e in backlog] == list(range(1, 15))

    session = run_pim(
        "console",
        "--as",
        "bob@contoso.com",
        db=sqlite_url,
        input="activate helpdesk-admin 30m printers\n",
    )
    assert session.returncode == 0, session.stderr
    new = feed.events(2)
    assert [(e["id"], e["action"], e["target"]) for e in new] == [
        (15, "request.created", "bob@contoso.com/helpdesk-admin"),
        (16, "role.activated", "bob@contoso.com/helpdesk-admin"),
    ]
    assert new[0]["prev_hash"] == backlog[-1]["hash"] and new[1]["prev_hash"] == new[0]["hash"]

    code, stderr = feed.stop(sig)
    assert (code, stderr) == (0, "")
    assert feed.lines.empty()


def test_follow_resumes_after_since_id(run_pim: Run, sqlite_url: str, follow) -> None:
    assert run_pim("policy", "apply", "policy.yaml", db=sqlite_url).returncode == 0
    feed = follow("--since-id", "12")
    assert [e["id"] for e in feed.events(2)] == [13, 14]
    time.sleep(0.6)  # a few polls find nothing new, and print nothing
    assert feed.lines.empty()
    assert feed.stop(signal.SIGTERM) == (0, "")


def test_follow_refuses_csv(run_pim: Run, sqlite_url: str) -> None:
    result = run_pim("audit", "export", "--follow", "--format", "csv", db=sqlite_url)
    assert_no_traceback(result.stdout, result.stderr)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "pim-bot: --follow writes JSON lines; leave out --format or use jsonl\n"
    )
