"""What the container image holds, run without a container runtime: pim-bot's wheel installed
into a fresh virtual environment (the Dockerfile's second stage), the example policy beside it,
`pim-bot db upgrade`, then `pim-bot serve` answering /healthz, /readyz and /metrics.

The wheel is built from this checkout; its dependencies are the ones already installed for
the tests (made visible to the fresh environment by a .pth line, which adds their folder but
not this checkout's editable install), so the test takes seconds, not a download."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from pathlib import Path

from clihelp import EXAMPLE_POLICY, ROOT, clean_env, free_port


def _build_wheel(out: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    (wheel,) = out.glob("pim_bot-*.whl")
    return wheel


def _venv(where: Path, wheel: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=60
    )
    inner = subprocess.run(
        [
            str(where / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(inner, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(where / "bin" / "python"),
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return where / "bin" / "pim-bot"


def _get(url: str) -> tuple[int, dict | str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = resp.read().decode()
            return resp.status, json.loads(body) if body.startswith("{") else body
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_the_wheel_in_a_fresh_venv_migrates_and_serves(tmp_path: Path):
    wheel = _build_wheel(tmp_path / "dist")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("storage/migrations/versions/") for n in names)
    assert "storage/migrations/env.py" in names
    assert not any(n.startswith("tests/") for n in names)

    pim = _venv(tmp_path / "venv", wheel)
    app = tmp_path / "app"  # the image's WORKDIR: the examples, no source tree
    (app / "examples").mkdir(parents=True)
    shutil.copy(EXAMPLE_POLICY, app / "examples" / "policy.yaml")
    env = clean_env(
        f"sqlite:///{tmp_path}/pim.db", {"PIM_POLICY": "examples/policy.yaml", "LOG_FORMAT": "json"}
    )
    upgrade = subprocess.run(
        [str(pim), "db", "upgrade"], cwd=app, env=env, text=True, capture_output=True, timeout=60
    )
    assert (upgrade.returncode, upgrade.stdout) == (0, "Database is up to date.\n"), upgrade.stderr

    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [str(pim), "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=app,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 30
        while True:
            try:
                status, health = _get(f"{base}/healthz")
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "serve did not answer in 30 s"
                time.sleep(0.1)
        assert status == 200 and health["status"] == "ok"
        assert _get(f"{base}/readyz")[0] == 200
        status, metrics = _get(f"{base}/metrics")
        assert status == 200 and "pim_outbox_depth 0.0" in str(metrics)
    finally:
        server.terminate()
        server.wait(timeout=15)
        log.close()
    lines = (tmp_path / "serve.log").read_text().splitlines()
    # LOG_FORMAT=json: every line is one JSON object.
    records = [json.loads(line) for line in lines]
    assert any("listening on" in r["message"] for r in records)
    assert {"time", "level", "logger", "message", "request_id", "actor"} <= records[0].keys()
