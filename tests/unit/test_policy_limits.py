"""Hostile policy files: each is refused quickly, with its line, as one error, changing nothing.

The attacks: an alias bomb (a 1 KB file that expands to billions of nodes), nesting 10,000
deep, huge files and huge strings, and control characters hidden in quoted strings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from handlers.clock import FixedClock
from handlers.errors import PolicyError
from handlers.policy import apply_policy, read_policy_file
from storage.db import make_engine
from storage.models import AuditEvent, Principal, Role, Schedule
from storage.uow import UnitOfWork

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)

HEAD = """\
principals:
  - {email: alice@contoso.com, name: Alice Admin}
roles:
  - id: helpdesk-admin
    name: Helpdesk Administrator
"""

# Nine levels of nine aliases: about 387 million strings once expanded, 1 KB as text.
_LEVELS = ["    description: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
_LEVELS += [f"    x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
BOMB = HEAD + "\n".join(_LEVELS) + "\n    settings: {max_duration: 4h, approvers: *a8}\n"


@pytest.fixture
async def uow(db_url: str) -> AsyncIterator[UnitOfWork]:
    engine = make_engine(db_url)
    try:
        yield UnitOfWork(engine)
    finally:
        await engine.dispose()


async def counts(uow: UnitOfWork) -> tuple[int, ...]:
    async with uow.transaction() as s:
        return tuple(
            [
                int(await s.scalar(select(func.count()).select_from(t)) or 0)
                for t in (Principal, Role, Schedule, AuditEvent)
            ]
        )


async def refused(uow: UnitOfWork, text: str, **options: int) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        await apply_policy(uow, FixedClock(T0), text=text, **options)
    assert await counts(uow) == (0, 0, 0, 0)
    lines = str(caught.value).splitlines()
    assert lines[0] == "policy.yaml: 1 error, nothing changed", lines
    assert len(lines) == 2 and len(lines[1]) < 300, lines
    return lines


async def test_alias_bomb_is_refused_before_it_expands(uow):
    assert len(BOMB) < 1100
    assert (await refused(uow, BOMB))[1].startswith(
        "policy.yaml:10: the aliases in this file expand to more than 10000 values"
    )


async def test_an_alias_of_the_node_it_is_inside_is_refused(uow):
    text = HEAD + "    description: &loop [a, *loop]\n"
    assert (await refused(uow, text))[1] == (
        "policy.yaml:6: the alias *loop refers to a value that contains it"
    )


async def test_small_aliases_still_work(uow):
    text = """\
principals:
  - {email: alice@contoso.com, name: Alice Admin}
roles:
  - {id: one, name: One, settings: &same {max_duration: 4h, require_approval: false}}
  - {id: two, name: Two, settings: *same}
"""
    plan = await apply_policy(uow, FixedClock(T0), text=text)
    assert "+ role two (Two)" in plan.render()


async def test_deep_nesting_is_refused_with_its_line(uow):
    deep = HEAD + "    description: " + "[" * 10_000 + "]" * 10_000 + "\n"
    # libyaml stops at its own depth limit (1,000) while reading ahead, before ours (20).
    assert (await refused(uow, deep))[1] in (
        "policy.yaml:6: values are nested more than 20 levels deep",
        "policy.yaml:6: not valid YAML: exceeded maximum nesting depth",
    )
    deep = HEAD + "    description: " + "[" * 25 + "]" * 25 + "\n"
    assert (await refused(uow, deep))[1] == (
        "policy.yaml:6: values are nested more than 20 levels deep"
    )


async def test_deep_block_nesting_is_refused_too(uow):
    deep = HEAD + "    settings:\n" + "".join(f"{'  ' * (i + 3)}k{i}:\n" for i in range(40))
    assert (await refused(uow, deep))[1] == (
        "policy.yaml:24: values are nested more than 20 levels deep"
    )


async def test_a_file_over_the_size_limit_is_refused_unread(uow, tmp_path: Path):
    big = tmp_path / "big.yaml"
    with big.open("w", encoding="utf-8") as out:
        out.write(HEAD + "    description: ")
        out.write("x" * 50_000_000)
        out.write("\n")
    with pytest.raises(PolicyError) as caught:
        read_policy_file(str(big), max_bytes=5_000_000)
    assert str(caught.value) == (
        f"{big}: 1 error, nothing changed\n"
        f"{big}:1: the file is larger than 5000000 bytes, the limit for policy files "
        "(PIM_POLICY_MAX_BYTES)"
    )
    assert (await refused(uow, HEAD + "    description: " + "x" * 2_000, max_bytes=1_000))[1] == (
        "policy.yaml:1: the file is larger than 1000 bytes, the limit for policy files "
        "(PIM_POLICY_MAX_BYTES)"
    )


async def test_long_descriptions_and_names_are_refused(uow):
    long_description = HEAD + "    description: " + "x" * 2_001 + "\n"
    assert (await refused(uow, long_description))[1] == (
        "policy.yaml:6: a value is too long (2001 characters; at most 2000)"
    )
    long_name = HEAD.replace("Helpdesk Administrator", "y" * 257)
    assert (await refused(uow, long_name))[1].startswith(
        "policy.yaml:5: roles[0].name: is too long"
    )
    huge_value = HEAD + "    settings: {max_duration: " + "9" * 100_000 + "}\n"
    assert (await refused(uow, huge_value))[1] == (
        "policy.yaml:6: a value is too long (100000 characters; at most 2000)"
    )
    long_key = HEAD + "    " + "k" * 300 + ": 1\n"
    assert (await refused(uow, long_key))[1] == (
        "policy.yaml:6: a key is too long (300 characters; at most 256)"
    )


@pytest.mark.parametrize(
    "escape, shown", [("\\0", "U+0000"), ("\\e", "U+001B"), ("\\x7f", "U+007F"), ("\\r", "U+000D")]
)
async def test_control_characters_in_strings_are_refused(uow, escape, shown):
    text = HEAD.replace("name: Alice Admin", f'name: "Alice{escape}Admin"')
    assert (await refused(uow, text))[1] == (
        f"policy.yaml:2: a value contains a control character ({shown}); remove it"
    )


async def test_a_line_break_in_a_name_cannot_forge_a_plan_line(uow):
    text = HEAD.replace("name: Alice Admin", 'name: "Alice\\n+ admin mallory@evil.example"')
    assert (await refused(uow, text))[1] == (
        "policy.yaml:2: principals[0].name: contains a line break; keep it on one line"
    )


async def test_descriptions_may_span_lines(uow):
    text = HEAD + "    description: |\n      Line one.\n      \tLine two.\n"
    plan = await apply_policy(uow, FixedClock(T0), text=text)
    async with uow.transaction() as s:
        assert await s.scalar(select(Role.description)) == "Line one.\n\tLine two."
    assert plan.applied
