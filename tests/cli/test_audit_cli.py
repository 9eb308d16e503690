"""`pim-bot audit export|verify` after real activity, and after someone edits the database."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from clihelp import EXAMPLE_POLICY, Run, assert_no_traceback, clean_env, pim_command, sqlite_path

FIELDS = ["id", "at", "actor", "action", "target", "details", "prev_hash", "hash"]

SESSION = """\
activate global-admin 1h fixing the tenant
wait 1s
as carol@contoso.com
approve $last change ticket looks fine
as bob@contoso.com
activate helpdesk-admin 30m password reset for dave
"""


@pytest.fixture(scope="module")
def busy_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Policy applied, then a console session: a request approved, a role self-activated.
    Built once; each test gets its own copy of the SQLite file."""
    base = tmp_path_factory.mktemp("busy")
    url = f"sqlite:///{base}/pim.db"

    def run(*args: str, input: str | None = None):
        return subprocess.run(
            [*pim_command(), *args],
            cwd=base,
            env=clean_env(url),
            input=input,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=60,
            check=False,
        )

    applied = run("policy", "apply", str(EXAMPLE_POLICY))
    assert applied.returncode == 0, applied.stderr
    session = run("console", "--as", "bob@contoso.com", input=SESSION)
    assert session.returncode == 0, session.stderr
    assert "You approved R-" in session.stdout
    assert "Helpdesk Administrator is active now." in session.stdout
    return base / "pim.db"


@pytest.fixture
def busy_db(busy_template: Path, tmp_path: Path) -> str:
    shutil.copy(busy_template, tmp_path / "busy.db")
    return f"sqlite:///{tmp_path}/busy.db"


def verify(run_pim: Run, db: str):
    result = run_pim("audit", "verify", db=db)
    assert_no_traceback(result.stdout, result.stderr)
    return result


def test_verify_and_export_agree(run_pim: Run, busy_db: str, workdir: Path) -> None:
    result = verify(run_pim, busy_db)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    n = int(lines[0].removeprefix("OK: ").removesuffix(" audit events, chain intact."))
    assert n > 14  # the policy alone writes 14; the session added more

    as_json = run_pim("audit", "export", "--format", "json", db=busy_db)
    assert as_json.returncode == 0, as_json.stderr
    events = json.loads(as_json.stdout)
    assert [e["id"] for e in events] == list(range(1, n + 1))
    assert all(set(e) == set(FIELDS) for e in events)
    assert all(isinstance(e["details"], dict) for e in events)
    actions = [e["action"] for e in events]
    assert any(e["actor"] == "carol@contoso.com" for e in events), actions
    assert any(e["actor"] == "bob@contoso.com" for e in events), actions
    for earlier, later in zip(events, events[1:], strict=False):
        assert later["prev_hash"] == earlier["hash"]

    as_csv = run_pim("audit", "export", "--format", "csv", db=busy_db)
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert rows[0] == FIELDS
    assert len(rows) == n + 1
    assert [int(r[0]) for r in rows[1:]] == list(range(1, n + 1))
    for row, event in zip(rows[1:], events, strict=True):
        assert row[2:5] == [event["actor"], event["action"], event["target"]]
        assert json.loads(row[5]) == event["details"]
        assert row[7] == event["hash"]

    # `-o FILE` writes the same bytes as stdout.
    to_file = run_pim("audit", "export", "--format", "csv", "-o", "audit.csv", db=busy_db)
    assert to_file.returncode == 0 and to_file.stdout == ""
    assert (workdir / "audit.csv").read_text(encoding="utf-8") == as_csv.stdout


def test_an_edited_event_is_found(run_pim: Run, busy_db: str) -> None:
    with sqlite3.connect(sqlite_path(busy_db)) as conn:
        conn.execute("UPDATE audit_events SET actor='mallory' WHERE id=3")
    result = verify(run_pim, busy_db)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "BROKEN at event 3: contents do not match the hash (edited) "
        "(2 events before it are intact)."
    ]


def test_a_removed_event_is_found(run_pim: Run, busy_db: str) -> None:
    with sqlite3.connect(sqlite_path(busy_db)) as conn:
        conn.execute("DELETE FROM audit_events WHERE id=5")
    result = verify(run_pim, busy_db)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "BROKEN at event 6: row 5 is missing (4 events before it are intact)."
    ]


def test_an_empty_log_verifies(run_pim: Run, sqlite_url: str) -> None:
    result = verify(run_pim, sqlite_url)
    assert (result.returncode, result.stdout) == (0, "OK: 0 audit events, chain intact.\n")
    exported = run_pim("audit", "export", "--format", "json", db=sqlite_url)
    assert json.loads(exported.stdout) == []
    as_csv = run_pim("audit", "export", "--format", "csv", db=sqlite_url)
    assert list(csv.reader(io.StringIO(as_csv.stdout))) == [FIELDS]
