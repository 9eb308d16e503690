"""Helpers for the black-box CLI tests: run the real `pim-bot` console script as a subprocess.

Every call has a timeout, runs in the test's tmp dir, and gets a clean environment (a
developer's DATABASE_URL, PIM_*, SLACK_* or MICROSOFT_* variables never leak in).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import aiohttp
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_POLICY = ROOT / "examples" / "policy.yaml"

_SCRIPT = Path(sys.executable).with_name("pim-bot")


def pim_command() -> list[str]:
    """The installed `pim-bot` entry point next to this interpreter, else `python -m bot.cli`."""
    if _SCRIPT.is_file():
        return [str(_SCRIPT)]
    return [sys.executable, "-m", "bot.cli"]


def clean_env(database_url: str | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIM_", "SLACK_", "MICROSOFT_"))
        and k not in ("DATABASE_URL", "PORT", "LOG_LEVEL")
    }
    env["PYTHONUNBUFFERED"] = "1"
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    env.update(extra or {})
    return env


def sqlite_path(url: str) -> Path:
    """The file behind an `sqlite[+aiosqlite]:///PATH` URL."""
    found = re.match(r"^sqlite(\+\w+)?:///(.+)$", url)
    assert found, url
    return Path(found.group(2))


def assert_no_traceback(*streams: str) -> None:
    for text in streams:
        assert "Traceback" not in text, text


Run = Callable[..., subprocess.CompletedProcess[str]]


START_TIMEOUT = 20
STOP_TIMEOUT = 10


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def default_sigint() -> None:
    """A shell's background job starts with SIGINT ignored, and so would the server when the
    tests run that way; give it the disposition it has under a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Server:
    def __init__(self, proc: subprocess.Popen[bytes], log: Path, port: int) -> None:
        self.proc, self.log_path, self.port = proc, log, port

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    async def healthz(self) -> tuple[int, dict]:
        """Poll GET /healthz until it answers; fail fast if the process dies."""
        url = f"http://127.0.0.1:{self.port}/healthz"
        deadline = time.monotonic() + START_TIMEOUT
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            while True:
                assert self.proc.poll() is None, f"serve exited early:\n{self.log}"
                try:
                    async with http.get(url) as resp:
                        return resp.status, await resp.json()
                except aiohttp.ClientConnectionError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"no answer from {url} in {START_TIMEOUT}s:\n{self.log}")
                    await asyncio.sleep(0.1)

    def stop(self, sig: signal.Signals) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve still running {STOP_TIMEOUT}s after {sig.name}:\n{self.log}")


def run_inline(
    workdir: Path, *args: str, db: str | None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`pim-bot ARGS` through the console script's own `main`, in this process: the same
    environment, working directory and answer as `run_pim`, without starting an interpreter
    (most of a command's time). For reading state a test checks (an export), never for the
    command under test: a subprocess also shows what the interpreter prints on its way out."""
    from bot.cli import main

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        wanted = clean_env(db, env)
        for name in set(os.environ) - set(wanted):
            patch.delenv(name)
        for name, value in wanted.items():
            patch.setenv(name, value)
        patch.chdir(workdir)
        patch.setattr(sys, "stdin", io.StringIO())
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(list(args))
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code if isinstance(exit_.code, int) else 2
        finally:  # main configures the root logger for its process: give pytest's back
            root.handlers[:] = handlers
            root.setLevel(level)
    return subprocess.CompletedProcess(["pim-bot", *args], code, out.getvalue(), err.getvalue())
