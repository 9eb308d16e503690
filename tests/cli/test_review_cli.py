"""`pim-bot review start|end|export` and deciding in the console, as a person would type it."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from clihelp import Run, assert_no_traceback

REVIEWS = """
reviews:
  - id: q-admins
    name: Quarterly privileged role review
    roles: all
    assignments: eligible
    reviewers: approvers
    recurrence: quarterly
    start: 2099-01-04
    duration: 14d
    on_no_response: keep
"""


def ok(result) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert_no_traceback(result.stdout, result.stderr)
    return result.stdout


def refused(result) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert_no_traceback(result.stdout, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1
    return result.stderr


def test_start_decide_end_export(
    run_pim: Run, read_pim: Run, workdir: Path, sqlite_url: str
) -> None:
    policy = workdir / "policy.yaml"
    policy.write_text(policy.read_text() + REVIEWS)
    plan = ok(run_pim("policy", "apply", "policy.yaml", "--dry-run", db=sqlite_url))
    assert "+ review q-admins (Quarterly privileged role review)" in plan
    ok(read_pim("policy", "apply", "policy.yaml", db=sqlite_url))
    assert "There is no review 'nope'" in refused(run_pim("review", "start", "nope", db=sqlite_url))
    assert "has no open instance" in refused(run_pim("review", "end", "q-admins", db=sqlite_url))
    out = ok(run_pim("review", "start", "q-admins", db=sqlite_url))
    assert out.startswith("Opened Quarterly privileged role review (q-admins) instance 1: 5 items")
    session = (
        "reviews\nreview 3 deny\nreview 3 deny moved to another team\n"
        "review 5 approve\nreview two approve\n"
    )
    said = ok(run_pim("console", "--as", "carol@contoso.com", input=session, db=sqlite_url))
    assert "#3 Bob Builder <bob@contoso.com> · Global Administrator (eligible)" in said
    assert "pim-bot recommends: deny — no activation in 30 days" in said
    assert "Say why you deny it: review 3 deny <reason>" in said
    assert "Recorded: item 3 denied." in said
    assert "You cannot review your own access." in said
    assert "'two' is not a review item number" in said
    out = ok(run_pim("review", "end", "q-admins", db=sqlite_url))
    assert "reviewed 1 of 5, approved 0, denied 1" in out and "applied: 1 removed" in out

    rows = list(
        csv.DictReader(
            io.StringIO(
                ok(run_pim("review", "export", "q-admins", "--format", "csv", db=sqlite_url))
            )
        )
    )
    assert [r["item"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert list(rows[0]) == [
        "item",
        "principal",
        "role",
        "assignment",
        "reviewer",
        "decision",
        "reason",
        "time",
        "recommendation",
        "outcome",
        "applied",
    ]
    denied = rows[2]
    assert (
        denied["principal"],
        denied["role"],
        denied["reviewer"],
        denied["decision"],
        denied["reason"],
    ) == ("bob@contoso.com", "global-admin", "carol@contoso.com", "Deny", "moved to another team")
    assert denied["time"] and denied["applied"].startswith("removed ")
    assert rows[0]["decision"] == "NotReviewed" and rows[0]["applied"].startswith("kept ")
    assert rows[0]["reviewer"] == "alice@contoso.com"  # billing names no approvers: admins
    ok(
        run_pim(
            "review",
            "export",
            "q-admins",
            "--instance",
            "1",
            "--format",
            "json",
            "-o",
            "evidence.json",
            db=sqlite_url,
        )
    )
    exported = json.loads((workdir / "evidence.json").read_text())
    assert [r["item"] for r in exported] == [1, 2, 3, 4, 5] and exported[2] == {
        **exported[2],
        "decision": "Deny",
        "reason": "moved to another team",
    }
    assert "has no instance 9" in refused(
        run_pim("review", "export", "q-admins", "--instance", "9", db=sqlite_url)
    )
