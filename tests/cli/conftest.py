"""Fixtures for the black-box CLI tests (helpers live in clihelp.py)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest
from clihelp import EXAMPLE_POLICY, Run, clean_env, pim_command


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The subprocess's working directory, with a copy of examples/policy.yaml in it."""
    wd = tmp_path / "wd"
    wd.mkdir()
    shutil.copy(EXAMPLE_POLICY, wd / "policy.yaml")
    return wd


@pytest.fixture
def run_pim(workdir: Path) -> Run:
    """run_pim(*args, db=URL, input=TEXT, env={...}, timeout=S) -> CompletedProcess."""

    def run(
        *args: str,
        db: str | None,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
        return subprocess.run(
            [*pim_command(), *args], cwd=workdir, env=clean_env(db, env), **stdin,
            capture_output=True, text=True, encoding="utf-8", timeout=timeout, check=False,
        )

    return run
