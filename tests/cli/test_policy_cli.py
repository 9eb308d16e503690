"""`pim-bot policy apply|export`: the plan, dry runs, idempotence, line-numbered refusals."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from clihelp import Run, assert_no_traceback

CREATES = [
    "+ principal alice@contoso.com (Alice Admin)",
    "+ admin alice@contoso.com",
    "+ principal bob@contoso.com (Bob Builder)",
    "+ role global-admin (Global Administrator)",
    "+ role demo-short (Demo Short Role)",
    "+ assignment bob@contoso.com eligible global-admin until 2027-06-30T00:00:00Z",
    "+ assignment bob@contoso.com eligible helpdesk-admin permanently",
]


def ok(result) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert_no_traceback(result.stdout, result.stderr)
    return result.stdout


def audit_events(run_pim: Run, db: str) -> list[dict]:
    return json.loads(ok(run_pim("audit", "export", "--format", "json", db=db)))


def exported(run_pim: Run, db: str) -> dict:
    return yaml.safe_load(ok(run_pim("policy", "export", db=db)))


def test_dry_run_prints_the_plan_and_changes_nothing(
    run_pim: Run, read_pim: Run, sqlite_url: str
) -> None:
    out = ok(run_pim("policy", "apply", "policy.yaml", "--dry-run", db=sqlite_url))
    lines = out.splitlines()
    for line in CREATES:
        assert line in lines, out
    assert lines[-1] == "(dry run: nothing changed)"

    # Nothing was written: a second dry run plans the very same creates, no audit event
    # exists, and the export is empty.
    again = ok(run_pim("policy", "apply", "policy.yaml", "--dry-run", db=sqlite_url))
    assert again == out
    assert audit_events(read_pim, sqlite_url) == []
    assert exported(read_pim, sqlite_url) == {
        "admins": [],
        "principals": [],
        "roles": [],
        "assignments": [],
    }


def test_apply_is_idempotent_and_audited(run_pim: Run, read_pim: Run, sqlite_url: str) -> None:
    out = ok(run_pim("policy", "apply", "policy.yaml", db=sqlite_url))
    lines = out.splitlines()
    for line in CREATES:
        assert line in lines, out
    assert "dry run" not in out
    assert all(line.startswith(("+ ", "~ ", "- ")) for line in lines), out
    events = audit_events(read_pim, sqlite_url)
    assert len(events) == len(lines)  # one audit event per planned change
    assert {e["actor"] for e in events} == {"policy:policy.yaml"}

    again = ok(run_pim("policy", "apply", "policy.yaml", db=sqlite_url))
    assert again == "No changes.\n"
    assert audit_events(read_pim, sqlite_url) == events


def test_a_change_to_the_file_is_planned_as_an_update(
    run_pim: Run, read_pim: Run, sqlite_url: str, workdir: Path
) -> None:
    ok(run_pim("policy", "apply", "policy.yaml", db=sqlite_url))
    policy = workdir / "policy.yaml"
    policy.write_text(
        policy.read_text(encoding="utf-8").replace(
            "settings: {max_duration: 4h}", "settings: {max_duration: 2h}"
        ),
        encoding="utf-8",
    )
    dry = ok(run_pim("policy", "apply", "policy.yaml", "--dry-run", db=sqlite_url))
    changed = [line for line in dry.splitlines() if "helpdesk-admin" in line]
    assert len(changed) == 1 and not changed[0].startswith("+"), dry
    out = ok(run_pim("policy", "apply", "policy.yaml", db=sqlite_url))
    assert [line for line in out.splitlines() if "helpdesk-admin" in line] == changed
    role = next(r for r in exported(read_pim, sqlite_url)["roles"] if r["id"] == "helpdesk-admin")
    assert role["settings"]["max_duration"] == "2h"


BAD_POLICY = """\
admins: [alice@contoso.com]
principals:
  - {email: alice@contoso.com, name: Alice Admin}
  - {email: not-an-email, name: Nobody}
roles:
  - id: helpdesk-admin
    name: Helpdesk Administrator
    settings: {max_duration: 3x, require_approval: maybe}
assignments:
  - {principal: alice@contoso.com, role: ghost-role, type: eligible}
"""


def test_a_bad_file_names_its_lines_and_changes_nothing(
    run_pim: Run, read_pim: Run, sqlite_url: str, workdir: Path
) -> None:
    ok(read_pim("policy", "apply", "policy.yaml", db=sqlite_url))
    events = audit_events(read_pim, sqlite_url)
    policy_before = exported(read_pim, sqlite_url)

    (workdir / "policy.yaml").write_text(BAD_POLICY, encoding="utf-8")
    for extra in ([], ["--dry-run"], ["--prune"]):
        result = run_pim("policy", "apply", "policy.yaml", *extra, db=sqlite_url)
        assert result.returncode != 0
        assert_no_traceback(result.stdout, result.stderr)
        assert result.stdout == ""
        found = re.findall(r"^policy\.yaml:(\d+): (.*)$", result.stderr, re.MULTILINE)
        by_line = {int(n): [] for n, _ in found}
        for n, message in found:
            by_line[int(n)].append(message)
        assert sorted(by_line) == [4, 8, 10], result.stderr
        assert any("not-an-email" in m for m in by_line[4])
        assert any("max_duration" in m and "3x" in m for m in by_line[8])
        assert any("require_approval" in m for m in by_line[8])
        assert any("ghost-role" in m for m in by_line[10])
        assert "nothing changed" in result.stderr

    assert audit_events(read_pim, sqlite_url) == events
    assert exported(read_pim, sqlite_url) == policy_before


def test_unreadable_files_get_one_line(run_pim: Run, sqlite_url: str, workdir: Path) -> None:
    missing = run_pim("policy", "apply", "nope.yaml", db=sqlite_url)
    assert missing.returncode == 2
    assert_no_traceback(missing.stderr)
    assert missing.stderr.count("\n") == 1 and "nope.yaml" in missing.stderr

    (workdir / "latin1.yaml").write_bytes("admins: [jos\xe9@contoso.com]\n".encode("latin-1"))
    binary = run_pim("policy", "apply", "latin1.yaml", db=sqlite_url)
    assert binary.returncode == 2
    assert_no_traceback(binary.stderr)
    assert binary.stderr.count("\n") == 1 and "UTF-8" in binary.stderr

    (workdir / "broken.yaml").write_text("admins: [alice@contoso.com\nroles: {\n", encoding="utf-8")
    broken = run_pim("policy", "apply", "broken.yaml", db=sqlite_url)
    assert broken.returncode == 2
    assert_no_traceback(broken.stderr)
    assert re.search(r"^broken\.yaml:\d+: not valid YAML", broken.stderr, re.MULTILINE)


def test_export_round_trips(
    run_pim: Run, read_pim: Run, sqlite_url: str, workdir: Path, tmp_path: Path
) -> None:
    ok(read_pim("policy", "apply", "policy.yaml", db=sqlite_url))
    text = ok(run_pim("policy", "export", db=sqlite_url))
    (workdir / "exported.yaml").write_text(text, encoding="utf-8")
    assert ok(run_pim("policy", "apply", "exported.yaml", db=sqlite_url)) == "No changes.\n"

    # `-o FILE` writes the same text.
    ok(run_pim("policy", "export", "-o", "exported-o.yaml", db=sqlite_url))
    assert (workdir / "exported-o.yaml").read_text(encoding="utf-8") == text

    # The export rebuilds the same policy in an empty database.
    fresh = f"sqlite:///{tmp_path}/fresh.db"
    ok(run_pim("policy", "apply", "exported.yaml", db=fresh))
    assert ok(run_pim("policy", "export", db=fresh)) == text
    assert ok(run_pim("policy", "apply", "policy.yaml", db=fresh)) == "No changes.\n"
