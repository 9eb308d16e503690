"""`pim-bot people link EMAIL slack:U…|teams:…`: the operator's explicit rebinding, audited;
bad input gets one line and changes nothing."""

from __future__ import annotations

import json

from clihelp import Run, assert_no_traceback


def audit_events(run_pim: Run, db: str) -> list[dict]:
    result = run_pim("audit", "export", "--format", "json", db=db)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_link_rebinds_and_is_audited(run_pim: Run, read_pim: Run, sqlite_url: str) -> None:
    assert read_pim("policy", "apply", "policy.yaml", db=sqlite_url).returncode == 0
    result = run_pim("people", "link", "Alice@Contoso.com", "slack:U0ALICE2", db=sqlite_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "Alice Admin (alice@contoso.com) is now Slack user U0ALICE2 (was U0ALICE).\n"
    )
    (linked,) = [e for e in audit_events(read_pim, sqlite_url) if e["action"] == "principal.linked"]
    assert linked["target"] == "alice@contoso.com" and linked["actor"].startswith("cli")
    assert linked["details"] == {"platform": "slack", "old_id": "U0ALICE", "new_id": "U0ALICE2"}
    result = run_pim("people", "link", "dave@contoso.com", "teams:aad-dave", db=sqlite_url)
    assert result.stdout == "Dave Duty (dave@contoso.com) is now Teams user aad-dave.\n"


def test_bad_input_gets_one_line_and_changes_nothing(
    run_pim: Run, read_pim: Run, sqlite_url: str
) -> None:
    assert read_pim("policy", "apply", "policy.yaml", db=sqlite_url).returncode == 0
    before = audit_events(read_pim, sqlite_url)
    for args, message in [
        (("nobody@contoso.com", "slack:U0NOBODY"), "No such person: nobody@contoso.com"),
        (("alice@contoso.com", "slack:nope"), "'slack:nope' is not a Slack user id"),
        (("alice@contoso.com", "U0ALICE2"), "'U0ALICE2' is not an account"),
        (("alice@contoso.com", "teams:"), "'teams:' is not a Teams user id"),
    ]:
        result = run_pim("people", "link", *args, db=sqlite_url)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert result.stdout == ""
        assert result.stderr.startswith(f"pim-bot: {message}")
        assert result.stderr.count("\n") == 1
        assert_no_traceback(result.stderr)
    assert audit_events(read_pim, sqlite_url) == before
