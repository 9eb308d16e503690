"""Helpers for the black-box CLI tests: run the real `pim-bot` console script as a subprocess.

Every call has a timeout, runs in the test's tmp dir, and gets a clean environment (a
developer's DATABASE_URL, PIM_*, SLACK_* or MICROSOFT_* variables never leak in).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

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
        k: v for k, v in os.environ.items()
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
