"""One vocabulary for states: outside vocab/, code names a state by its enum member, never by
its string, and a limit shared by chat, forms and engine is defined once.

The scan looks at the places a state goes — compared with, assigned to a state field, passed
as one, a mapping's key — so a button labelled "Approve" or a digest tile called "Denied" (words
for people) is not a state, while `status == "Granted"` or `.values(status="done")` is.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path

from vocab import states

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "handlers", "storage", "cards")
MIGRATIONS = ROOT / "storage" / "migrations"
STATE_FIELDS = {"status", "state", "kind", "member_type", "action", "decision", "outcome"}
STATE_VALUES = {
    m.value
    for e in vars(states).values()
    if isinstance(e, type) and issubclass(e, StrEnum) and e is not StrEnum
    for m in e
}


def _field(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _literals(node: ast.expr | None) -> Iterator[ast.Constant]:
    """String constants that are the value itself, through `a if c else b`, `a or b` and
    collections; not text built around one (f-strings, concatenation)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node
    elif isinstance(node, ast.IfExp):
        yield from _literals(node.body)
        yield from _literals(node.orelse)
    elif isinstance(node, ast.BoolOp):
        for value in node.values:
            yield from _literals(value)
    elif isinstance(node, ast.List | ast.Tuple | ast.Set):
        for elt in node.elts:
            yield from _literals(elt)


def _all_states(node: ast.expr | None) -> bool:
    return (
        isinstance(node, ast.List | ast.Tuple | ast.Set)
        and bool(node.elts)
        and all(isinstance(e, ast.Constant) and e.value in STATE_VALUES for e in node.elts)
    )


def _loop_states(target: ast.expr, items: ast.expr) -> Iterator[ast.expr | None]:
    """`for status in (...)`, and `for status, ids in (("fanned", a), ...)`."""
    if _field(target) in STATE_FIELDS:
        yield items
    elif isinstance(target, ast.Tuple) and isinstance(items, ast.List | ast.Tuple | ast.Set):
        at = [i for i, t in enumerate(target.elts) if _field(t) in STATE_FIELDS]
        for item in items.elts:
            if isinstance(item, ast.Tuple) and len(item.elts) == len(target.elts):
                yield from (item.elts[i] for i in at)


def _state_places(tree: ast.AST) -> Iterator[ast.expr | None]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            yield node.left
            yield from node.comparators
        elif isinstance(node, ast.Call):
            if _field(node.func) in {"in_", "notin_"}:
                yield from node.args
            yield from (k.value for k in node.keywords if k.arg in STATE_FIELDS | {"default"})
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                pairs = (
                    zip(target.elts, node.value.elts, strict=False)
                    if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
                    else [(target, node.value)]
                )
                yield from (v for t, v in pairs if _field(t) in STATE_FIELDS)
            if _all_states(node.value):  # a named set of states, e.g. LIVE = ("pending", ...)
                yield node.value
        elif isinstance(node, ast.For | ast.comprehension):
            yield from _loop_states(node.target, node.iter)
        elif (
            isinstance(node, ast.Tuple)
            and len(node.elts) == 2  # ("status", "sent") pairs
            and isinstance(node.elts[0], ast.Constant)
            and node.elts[0].value in STATE_FIELDS
        ):
            yield node.elts[1]
        elif isinstance(node, ast.Dict):
            yield from node.keys
            yield from (
                v
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and k.value in STATE_FIELDS
            )
        elif isinstance(node, ast.Subscript) and _field(node.value) == "Literal":
            yield node.slice
        elif isinstance(node, ast.arguments):
            yield from node.defaults
            yield from node.kw_defaults


def stray_states(source: str, name: str = "<source>") -> list[str]:
    found = {
        (c.lineno, c.value)
        for place in _state_places(ast.parse(source))
        for c in _literals(place)
        if c.value in STATE_VALUES
    }
    return [f"{name}:{line}: {value!r}" for line, value in sorted(found)]


def _sources() -> Iterator[Path]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if MIGRATIONS not in path.parents:
                yield path


def test_the_scan_finds_states_written_as_strings() -> None:
    source = """
if view.status == "PendingApproval": pass
q = select(T).where(T.action == "selfActivate", T.status.in_(["pending", "sending"]))
m.status, m.sent_at = "sent", now
m.status = "fanned" if targets else "unreachable"
update(T).values(status="done")
step = ApprovalStep(decision="Approve" if ok else "Deny")
OUTCOME = {"Granted": "approved"}
row = {"status": "pending", "attempts": 0}
Kind = Literal["eligible", "active"]
def grant(*, kind: str = "eligible") -> None: ...
LIVE = ("running", "Scheduled")
for status in ("Expired", "Removed"): pass
for status, ids in (("Revoked", a), ("Failed", b)): pass
for key, value in (("state", "Active"), ("claimed_by", worker)): pass
"""
    found = {line.split(": ", 1)[1] for line in stray_states(source)}
    assert found == {
        repr(v)
        for v in (
            "PendingApproval",
            "selfActivate",
            "pending",
            "sending",
            "sent",
            "fanned",
            "unreachable",
            "done",
            "Approve",
            "Deny",
            "Granted",
            "eligible",
            "active",
            "running",
            "Scheduled",
            "Expired",
            "Removed",
            "Revoked",
            "Failed",
            "Active",
        )
    }


def test_words_for_people_are_not_states() -> None:
    source = """
buttons = [button("Approve", APPROVE), button("Deny", DENY)]
labels = ("Requests needing approval", "Approved", "Denied", "Timed out", "Canceled")
state = "eligible" + until
line = f"{who} ({'eligible' if kind == ScheduleKind.ELIGIBLE else 'active'})"
health = {"status": "error", "database": "unreachable"}
"""
    assert stray_states(source) == []


def test_states_are_named_only_in_the_vocabulary() -> None:
    stray = [
        hit
        for path in _sources()
        for hit in stray_states(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    ]
    assert stray == [], "use the member of vocab.states instead:\n" + "\n".join(stray)


def test_the_justification_limit_is_defined_once() -> None:
    definitions = [
        str(path.relative_to(ROOT))
        for path in [*_sources(), *(ROOT / "vocab").rglob("*.py")]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Assign | ast.AnnAssign)
        and isinstance(node.value, ast.Constant)
        and node.value.value == 500
        and any(
            _field(t) in {"MAX_JUSTIFICATION", "REASON_MAX"}
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        )
    ]
    assert definitions == ["vocab/limits.py"]
