"""`pim-bot audit checkpoint`, `verify --checkpoint` and a keyed chain, from the outside: the
attacks are done with sqlite3 on the file, as someone with database access would."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from clihelp import EXAMPLE_POLICY, Run, assert_no_traceback, clean_env, pim_command, sqlite_path

from storage.audit_hash import AuditKey, event_hash

KEY = "s3cret-audit-key-for-tests-only"
KEYED = {"PIM_AUDIT_KEY": KEY}
LINE = re.compile(r"^audit-checkpoint seq=(\d+) hash=([0-9a-f]{64}) key=([0-9a-f]{16}|none)$")
SESSION = """\
activate global-admin 1h fixing the tenant
as carol@contoso.com
approve $last change ticket looks fine
as bob@contoso.com
activate helpdesk-admin 30m password reset for dave
"""


@pytest.fixture(scope="module")
def keyed_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log written with PIM_AUDIT_KEY from the first event: policy, then a console session."""
    base = tmp_path_factory.mktemp("keyed")
    env = clean_env(f"sqlite:///{base}/pim.db", KEYED)
    for args, stdin in [
        (("policy", "apply", str(EXAMPLE_POLICY)), None),
        (("console", "--as", "bob@contoso.com"), SESSION),
    ]:
        done = subprocess.run(
            [*pim_command(), *args],
            cwd=base,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    return base / "pim.db"


@pytest.fixture
def keyed_db(keyed_template: Path, tmp_path: Path) -> str:
    shutil.copy(keyed_template, tmp_path / "keyed.db")
    return f"sqlite:///{tmp_path}/keyed.db"


def pim(run_pim: Run, *args: str, db: str, env: dict[str, str] | None = KEYED):
    result = run_pim(*args, db=db, env=env)
    assert_no_traceback(result.stdout, result.stderr)
    return result


def save_checkpoint(run_pim: Run, db: str, path: Path) -> tuple[int, str]:
    printed = pim(run_pim, "audit", "checkpoint", db=db)
    assert printed.returncode == 0 and printed.stderr == ""
    [line] = printed.stdout.splitlines()
    found = LINE.match(line)
    assert found, line
    assert found[3] == AuditKey.from_text(KEY).key_id
    path.write_text(line + "\n", encoding="utf-8")
    return int(found[1]), found[2]


def rewrite(db: str, *, row_id: int, key: AuditKey | None) -> None:
    """Edit one row and recompute every later hash, as an attacker would (with the key if
    they hold it), so every row agrees with the one before it again."""
    with sqlite3.connect(sqlite_path(db)) as conn:
        conn.execute("UPDATE audit_events SET actor='mallory@contoso.com' WHERE id=?", (row_id,))
        [prev] = conn.execute("SELECT hash FROM audit_events WHERE id=?", (row_id - 1,)).fetchone()
        rows = conn.execute(
            "SELECT id, at, actor, action, target, details FROM audit_events "
            "WHERE id>=? ORDER BY id",
            (row_id,),
        ).fetchall()
        for id_, at, actor, action, target, details in rows:
            prev_hash, prev = (
                prev,
                event_hash(
                    id=id_,
                    at=datetime.fromisoformat(at).replace(tzinfo=UTC),
                    actor=actor,
                    action=action,
                    target=target,
                    details=json.loads(details),
                    prev_hash=prev,
                    key=key,
                ),
            )
            conn.execute(
                "UPDATE audit_events SET prev_hash=?, hash=?, key_id=? WHERE id=?",
                (prev_hash, prev, key.key_id if key else None, id_),
            )


def test_a_keyed_log_verifies_reaches_its_checkpoint_and_never_holds_the_key(
    run_pim: Run, keyed_db: str, workdir: Path
) -> None:
    seq, _ = save_checkpoint(run_pim, keyed_db, workdir / "cp.txt")
    result = pim(run_pim, "audit", "verify", "--checkpoint", "cp.txt", db=keyed_db)
    assert (result.returncode, result.stdout) == (
        0,
        (
            f"OK: {seq} audit events, chain intact and keyed; it reaches the checkpoint "
            f"(newest at event {seq}).\n"
        ),
    )
    assert KEY.encode() not in sqlite_path(keyed_db).read_bytes()


def test_tail_deletion_passes_verify_but_not_the_checkpoint(
    run_pim: Run, keyed_db: str, workdir: Path
) -> None:
    seq, _ = save_checkpoint(run_pim, keyed_db, workdir / "cp.txt")
    with sqlite3.connect(sqlite_path(keyed_db)) as conn:
        conn.execute("DELETE FROM audit_events WHERE id > ?", (seq - 3,))
    assert pim(run_pim, "audit", "verify", db=keyed_db).returncode == 0
    result = pim(run_pim, "audit", "verify", "--checkpoint", "cp.txt", db=keyed_db)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"BROKEN: event {seq} of the checkpoint is gone and the log ends at event {seq - 3}: "
        "events were deleted at the tail."
    ]


def test_a_rewrite_by_the_key_holder_is_caught_by_the_checkpoint(
    run_pim: Run, keyed_db: str, workdir: Path
) -> None:
    seq, _ = save_checkpoint(run_pim, keyed_db, workdir / "cp.txt")
    rewrite(keyed_db, row_id=5, key=AuditKey.from_text(KEY))
    assert pim(run_pim, "audit", "verify", db=keyed_db).returncode == 0
    result = pim(run_pim, "audit", "verify", "--checkpoint", "cp.txt", db=keyed_db)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"BROKEN: event {seq} no longer has the checkpoint's hash: the log was rewritten up to it."
    ]


@pytest.mark.parametrize(
    "forger", [None, AuditKey.from_text("a guess at the audit key")], ids=["unkeyed", "own-key"]
)
def test_a_rewrite_without_the_key_fails_verify(run_pim: Run, keyed_db: str, forger) -> None:
    rewrite(keyed_db, row_id=5, key=forger)
    result = pim(run_pim, "audit", "verify", db=keyed_db)
    assert result.returncode == 1
    assert result.stdout.startswith("BROKEN at event 5: ")
    assert result.stdout.endswith("(4 events before it are intact).\n")


def test_a_keyed_log_needs_its_key(run_pim: Run, keyed_db: str) -> None:
    key_id = AuditKey.from_text(KEY).key_id
    unkeyed = pim(run_pim, "audit", "verify", db=keyed_db, env=None)
    assert (unkeyed.returncode, unkeyed.stdout) == (2, "")
    assert unkeyed.stderr == (
        f"pim-bot: audit events from 1 on are keyed (key id {key_id}): "
        "set PIM_AUDIT_KEY to verify them\n"
    )
    # Appending without the key would break the chain for good: refused, nothing written.
    refused = run_pim(
        "console",
        "--as",
        "bob@contoso.com",
        db=keyed_db,
        input="activate helpdesk-admin 30m printers\n",
    )
    assert_no_traceback(refused.stdout, refused.stderr)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        f"pim-bot: the audit log is keyed with key id {key_id}, and this process has no audit "
        "key: set PIM_AUDIT_KEY to the key the log was written with"
    ]
    with sqlite3.connect(sqlite_path(keyed_db)) as conn:
        assert conn.execute(
            "SELECT count(*) FROM audit_events WHERE key_id IS NULL"
        ).fetchone() == (0,)


@pytest.mark.parametrize(
    "content", [None, "", "audit-checkpoint seq=x hash=abc\n"], ids=["missing", "empty", "garbled"]
)
def test_a_bad_checkpoint_file_is_one_line_and_exit_2(
    run_pim: Run, keyed_db: str, workdir: Path, content
) -> None:
    if content is not None:
        (workdir / "cp.txt").write_text(content, encoding="utf-8")
    result = pim(run_pim, "audit", "verify", "--checkpoint", "cp.txt", db=keyed_db)
    assert (result.returncode, result.stdout) == (2, "")
    [line] = result.stderr.splitlines()
    assert line.startswith("pim-bot: ") and "cp.txt" in line


def test_an_unkeyed_log_continues_keyed_once_the_key_is_set(
    run_pim: Run, sqlite_url: str, workdir: Path
) -> None:
    assert pim(run_pim, "policy", "apply", "policy.yaml", db=sqlite_url, env=None).returncode == 0
    unkeyed = pim(run_pim, "audit", "checkpoint", db=sqlite_url, env=None).stdout
    assert unkeyed.endswith(" key=none\n")
    (workdir / "old.txt").write_text(unkeyed, encoding="utf-8")
    before = pim(run_pim, "audit", "verify", db=sqlite_url)
    assert (before.returncode, before.stdout) == (
        0,
        "OK: 14 audit events, chain intact; no event is keyed yet (the next one will be).\n",
    )
    session = run_pim(
        "console",
        "--as",
        "bob@contoso.com",
        db=sqlite_url,
        env=KEYED,
        input="activate helpdesk-admin 30m printers\n",
    )
    assert session.returncode == 0, session.stderr
    result = pim(run_pim, "audit", "verify", "--checkpoint", "old.txt", db=sqlite_url)
    assert result.returncode == 0
    assert result.stdout == (
        "OK: 16 audit events, chain intact; keyed from event 15 on "
        "(events before it predate PIM_AUDIT_KEY); it reaches the "
        "checkpoint (newest at event 14).\n"
    )
