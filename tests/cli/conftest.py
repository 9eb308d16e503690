"""Fixtures for the black-box CLI tests (helpers live in clihelp.py)."""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from clihelp import (
    EXAMPLE_POLICY,
    STOP_TIMEOUT,
    Run,
    Server,
    clean_env,
    default_sigint,
    free_port,
    pim_command,
    run_inline,
)


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
            [*pim_command(), *args],
            cwd=workdir,
            env=clean_env(db, env),
            **stdin,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture
def read_pim(workdir: Path) -> Run:
    """`pim-bot` in this process, for reading back what a command did (clihelp.run_inline)."""
    return functools.partial(run_inline, workdir)


@pytest.fixture
def start_serve(workdir: Path) -> Iterator:
    started: list[Server] = []

    def start(
        db: str, *args: str, env: Mapping[str, str] | None = None, port: int | None = None
    ) -> Server:
        port = port or free_port()
        log = workdir / f"serve-{len(started)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*pim_command(), "serve", "--host", "127.0.0.1", *args],
                cwd=workdir,
                env=clean_env(db, {"PIM_POLICY": str(EXAMPLE_POLICY), **(env or {})}),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=default_sigint,
            )
        server = Server(proc, log, port)
        started.append(server)
        return server

    yield start
    for server in started:  # a failed test must not leave a server behind
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(timeout=STOP_TIMEOUT)
