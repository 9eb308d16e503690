"""`pim-bot policy apply` on hostile files: refused at once with one line naming the line,
exit code 2, nothing changed (the unit tests hold the full list of attacks)."""

from __future__ import annotations

from pathlib import Path

from clihelp import Run, assert_no_traceback

BOMB_LEVELS = ["    description: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
BOMB_LEVELS += [f"    x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
BOMB = (
    """\
principals:
  - {email: alice@contoso.com, name: Alice Admin}
roles:
  - id: helpdesk-admin
    name: Helpdesk Administrator
"""
    + "\n".join(BOMB_LEVELS)
    + "\n"
)


def refused(run_pim: Run, db: str, name: str, env: dict[str, str] | None = None) -> str:
    result = run_pim("policy", "apply", name, db=db, env=env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert_no_traceback(result.stdout, result.stderr)
    assert result.stdout == ""
    return result.stderr


def test_hostile_files_are_refused_with_their_line(
    run_pim: Run, read_pim: Run, sqlite_url: str, workdir: Path
) -> None:
    (workdir / "bomb.yaml").write_text(BOMB, encoding="utf-8")
    assert refused(run_pim, sqlite_url, "bomb.yaml") == (
        "pim-bot: bomb.yaml: 1 error, nothing changed\n"
        "bomb.yaml:10: the aliases in this file expand to more than 10000 values; "
        "write the values out instead\n"
    )

    (workdir / "deep.yaml").write_text(
        "roles: " + "[" * 10_000 + "]" * 10_000 + "\n", encoding="utf-8"
    )
    stderr = refused(run_pim, sqlite_url, "deep.yaml")
    assert stderr.startswith("pim-bot: deep.yaml: 1 error, nothing changed\ndeep.yaml:1: ")
    assert stderr.count("\n") == 2 and "nest" in stderr

    (workdir / "nul.yaml").write_text(
        'principals:\n  - {email: alice@contoso.com, name: "Alice\\0"}\n', encoding="utf-8"
    )
    assert refused(run_pim, sqlite_url, "nul.yaml").endswith(
        "nul.yaml:2: a value contains a control character (U+0000); remove it\n"
    )

    # Over PIM_POLICY_MAX_BYTES the file is not even read to the end.
    assert refused(run_pim, sqlite_url, "policy.yaml", env={"PIM_POLICY_MAX_BYTES": "100"}) == (
        "pim-bot: policy.yaml: 1 error, nothing changed\n"
        "policy.yaml:1: the file is larger than 100 bytes, the limit for policy files "
        "(PIM_POLICY_MAX_BYTES)\n"
    )

    exported = read_pim("policy", "export", db=sqlite_url)
    assert exported.returncode == 0, exported.stderr
    assert "alice" not in exported.stdout  # nothing was applied
