"""The CLI's rough edges seen by a new user: each answered in one line, nothing left behind."""

from __future__ import annotations

import subprocess
from pathlib import Path

from clihelp import Run, assert_no_traceback, clean_env, pim_command


def test_audit_export_into_head_says_nothing_about_a_broken_pipe(
    run_pim: Run, sqlite_url: str, workdir: Path
) -> None:
    assert run_pim("policy", "apply", "policy.yaml", db=sqlite_url).returncode == 0
    command = " ".join(pim_command()) + " audit export --format jsonl | head -n 1"
    done = subprocess.run(
        ["sh", "-c", command],
        cwd=workdir,
        env=clean_env(sqlite_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.count("\n") == 1
    assert "Broken pipe" not in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_bare_group_names_its_subcommands_not_an_internal_name(run_pim: Run) -> None:
    for group, words in (
        ("policy", "apply|export"),
        ("digest", "preview|send"),
        ("audit", "export|verify|checkpoint"),
    ):
        done = run_pim(group, db=None)
        assert done.returncode == 2
        assert words in done.stderr and "_command" not in done.stderr, done.stderr


def test_digest_since_past_the_cap_names_the_cap(run_pim: Run, sqlite_url: str) -> None:
    done = run_pim("digest", "preview", "--since", "100000d", db=sqlite_url)
    assert done.returncode == 2
    assert "3650 days" in done.stderr and "neither a date" not in done.stderr, done.stderr


def test_dry_run_creates_no_database_file(run_pim: Run, workdir: Path) -> None:
    target = workdir / "fresh.db"
    done = run_pim("policy", "apply", "policy.yaml", "--dry-run", db=f"sqlite:///{target}")
    assert done.returncode == 0, done.stderr
    assert "+ role global-admin" in done.stdout and "dry run" in done.stdout
    assert f"no database at {target}" in done.stdout
    assert not target.exists()


def test_a_database_error_names_the_path(run_pim: Run, workdir: Path) -> None:
    missing = workdir / "no-such-folder" / "pim.db"
    done = run_pim("audit", "checkpoint", db=f"sqlite:///{missing}")
    assert done.returncode == 2
    assert_no_traceback(done.stderr)
    assert str(missing) in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_the_teams_package_is_ignored_by_git() -> None:
    ignored = Path(__file__).resolve().parents[2] / ".gitignore"
    assert "pim-bot-teams.zip" in ignored.read_text().splitlines()
