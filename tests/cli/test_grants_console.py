"""In the console, as a user sees it: the activation notice says the grant is being
provisioned, then that it is active in the target system; an admin's `grants` lists it, and
nobody else may."""

from __future__ import annotations

from clihelp import Run, assert_no_traceback

from tests.webhookfake import SECRET, ThreadedReceiver

POLICY = """admins: [alice@contoso.com]
principals:
  - {email: alice@contoso.com, name: Alice Admin}
  - {email: bob@contoso.com, name: Bob Builder}
roles:
  - id: db
    name: Database Break Glass
    settings: {require_justification: false}
    grant: [{webhook: "URL"}]
assignments:
  - {principal: bob@contoso.com, role: db, type: eligible}
"""

SCRIPT = """\
activate db 1h
wait 3s
grants
as alice@contoso.com
grants
"""


def test_console_shows_the_grant_status(run_pim: Run, sqlite_url: str, workdir) -> None:
    with ThreadedReceiver() as hook:
        (workdir / "grants.yaml").write_text(POLICY.replace("URL", hook.url), encoding="utf-8")
        result = run_pim(
            "console",
            "--as",
            "bob@contoso.com",
            "--policy",
            "grants.yaml",
            db=sqlite_url,
            input=SCRIPT,
            timeout=90,
            env={"PIM_WEBHOOK_SECRET": SECRET},
        )
    assert result.returncode == 0, result.stderr
    assert_no_traceback(result.stdout, result.stderr)
    out = result.stdout
    notice = out.index("🔔 Database Break Glass is active until")
    assert out[notice:].splitlines()[1] == "  webhook: provisioning…", out
    assert "🔔 Database Break Glass is active in webhook." in out[notice:]
    assert "Only admins can list grants." in out  # Bob may not
    assert "Provisioned · bob@contoso.com · db · webhook http://127.0.0.1:" in out
    assert [d.type for d in hook.deliveries] == ["grant.activated"]


EXTEND_SCRIPT = """\
activate db 1h
wait 3s
extend db 30m
wait 3s
"""


def test_console_shows_the_grant_end_moving_with_an_extension(
    run_pim: Run, sqlite_url: str, workdir
) -> None:
    with ThreadedReceiver() as hook:
        (workdir / "grants.yaml").write_text(POLICY.replace("URL", hook.url), encoding="utf-8")
        result = run_pim(
            "console",
            "--as",
            "bob@contoso.com",
            "--policy",
            "grants.yaml",
            db=sqlite_url,
            input=EXTEND_SCRIPT,
            timeout=90,
            env={"PIM_WEBHOOK_SECRET": SECRET},
        )
    assert result.returncode == 0, result.stderr
    assert_no_traceback(result.stdout, result.stderr)
    out = result.stdout
    notice = out.index("🔔 Database Break Glass is extended until")
    assert out[notice:].splitlines()[1] == "  webhook: moving the end…", out
    assert "🔔 Database Break Glass in webhook now lasts until" in out[notice:]
    assert [d.type for d in hook.deliveries] == ["grant.activated", "grant.extended"]
    activated, extended = (d.body["data"]["end"] for d in hook.deliveries)
    assert extended > activated
