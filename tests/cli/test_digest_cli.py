"""`pim-bot digest preview|send`: the digest in the terminal, and sent now through the outbox."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
from clihelp import Run, assert_no_traceback, sqlite_path

SESSION = """\
activate helpdesk-admin 30m password reset for dave
"""


def ok(result) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert_no_traceback(result.stdout, result.stderr)
    return result.stdout


@pytest.fixture
def busy(run_pim: Run, sqlite_url: str) -> str:
    """The example policy applied and one self-activation made a moment ago."""
    ok(run_pim("policy", "apply", "policy.yaml", db=sqlite_url))
    out = ok(run_pim("console", "--as", "bob@contoso.com", input=SESSION, db=sqlite_url))
    assert "Helpdesk Administrator is active now." in out
    return sqlite_url


def counts(url: str) -> tuple[int, int, int]:
    with sqlite3.connect(sqlite_path(url)) as db:
        return tuple(
            db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[return-value]
            for table in ("audit_events", "outbox", "timers")
        )


def test_preview_prints_the_tiles_and_records_nothing(run_pim: Run, busy: str) -> None:
    before = counts(busy)
    out = ok(run_pim("digest", "preview", db=busy, env={"PIM_TIMEZONE": "Europe/Berlin"}))
    lines = out.splitlines()
    assert lines[0].startswith("📊 PIM digest")
    assert lines[1].endswith("(Europe/Berlin)")
    tiles = {
        re.split(r"\s{2,}", line.strip())[0]: re.split(r"\s{2,}", line.strip())[1:]
        for line in lines[4:8]
    }
    assert tiles["Activations"] == ["1", "0", "+1"]  # bob's helpdesk activation
    assert tiles["Eligible assignments made"][0] != "0"  # the policy's eligibilities
    assert set(tiles) == {
        "Activations",
        "Assignments made permanent",
        "Eligible assignments made",
        "Active assignments outside PIM",
    }
    assert re.search(r"Activations per day  [▁▂▃▄▅▆▇█]{7}  7 days", out)
    assert "1. Helpdesk Administrator" in out
    assert counts(busy) == before  # nothing sent, nothing audited


def test_preview_of_another_period(run_pim: Run, busy: str) -> None:
    out = ok(
        run_pim("digest", "preview", "--since", "2026-01-01", "--until", "2026-01-15", db=busy)
    )
    assert out.splitlines()[1] == "  Thu 1 Jan 00:00 → Thu 15 Jan 2026 00:00 (UTC)"
    assert "Activations per day  ▁▁▁▁▁▁▁▁▁▁▁▁▁▁  14 days" in out
    out = ok(run_pim("digest", "preview", "--since", "2d", "--until", "2026-01-15T09:30", db=busy))
    assert out.splitlines()[1] == "  Tue 13 Jan 09:30 → Thu 15 Jan 2026 09:30 (UTC)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--since", "last tuesday"],
            "pim-bot: --since 'last tuesday' is neither a date (2026-03-01) nor a duration (14d)",
        ),
        (
            ["--until", "2026-13-01"],
            "pim-bot: --until '2026-13-01' is not a date (e.g. 2026-03-01 or 2026-03-01T09:00)",
        ),
        (
            ["--since", "2026-03-02", "--until", "2026-03-01"],
            "pim-bot: --since must be before --until",
        ),
    ],
)
def test_bad_dates_are_refused_in_one_line(
    run_pim: Run, sqlite_url: str, args: list[str], message: str
) -> None:
    result = run_pim("digest", "preview", *args, db=sqlite_url)
    assert result.returncode == 2
    assert_no_traceback(result.stdout, result.stderr)
    assert result.stderr.strip() == message and result.stdout == ""


def test_send_queues_one_digest_per_admin_for_serve_to_deliver(run_pim: Run, busy: str) -> None:
    out = ok(run_pim("digest", "send", db=busy))
    assert out.strip() == "Digest queued for 1 admin; a running `pim-bot serve` delivers it."
    with sqlite3.connect(sqlite_path(busy)) as db:
        rows = db.execute(
            "SELECT p.email, o.status, o.payload FROM outbox o "
            "JOIN principals p ON p.id = o.recipient_id "
            "WHERE o.kind = 'digest'"
        ).fetchall()
        sent = db.execute(
            "SELECT details FROM audit_events WHERE action = 'digest.sent'"
        ).fetchall()
    assert [(email, status) for email, status, _ in rows] == [("alice@contoso.com", "pending")]
    payload = json.loads(rows[0][2])
    assert payload["headline"].startswith("PIM digest for ")
    assert payload["digest"]["tiles"][0] == {
        "label": "Activations",
        "value": 1,
        "previous": 0,
        "unit": "",
    }
    assert len(sent) == 1 and json.loads(sent[0][0])["admins"] == 1
    assert ok(run_pim("audit", "verify", db=busy)).startswith("OK:")


def test_send_without_admins_says_so(run_pim: Run, sqlite_url: str) -> None:
    result = run_pim("digest", "send", db=sqlite_url)
    assert result.returncode == 1
    assert result.stdout.strip() == "No admins to send the digest to: nothing was queued."
