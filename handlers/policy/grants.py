"""Checking a role's `grant:` list: where an activation of the role takes real effect.

Each entry names one target kind with its reference, and the few keys that kind takes:

    grant:
      - {entra_role: 62e90394-69f5-4237-9190-012177145e10, scope: /}
      - {entra_group: 4f1c…, access: member}
      - {azure_role: b24988ac-…, scope: /subscriptions/…/resourceGroups/prod}
      - {slack_usergroup: S0123ABC}
      - {webhook: https://hooks.example.com/pim}
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from handlers.grants.provider import TARGET_KINDS, Target
from handlers.grants.targets import describe, from_json, to_json
from handlers.policy.checker import Checker, shown
from handlers.policy.yaml_lines import LineList, LineMap

# The keys each kind takes besides its own; a webhook cannot be read back, so no enforce.
_EXTRA = {
    "entra_role": ("scope", "enforce"),
    "entra_group": ("access", "enforce"),
    "azure_role": ("scope", "enforce"),
    "slack_usergroup": ("enforce",),
    "webhook": (),
}
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_ARM_ROLE = re.compile(
    r"(/[^/\s]+)*/providers/Microsoft\.Authorization/roleDefinitions/" + _GUID.pattern,
    re.IGNORECASE,
)
_USERGROUP = re.compile(r"S[A-Z0-9]{2,30}")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_grants(check: Checker, item: LineMap, path: str) -> tuple[Target, ...] | None:
    """The role's targets (empty: no `grant:`), or None when any entry is wrong."""
    raw = item.get("grant")
    if raw is None:
        return ()
    where = f"{path}.grant"
    if not isinstance(raw, LineList):
        check.fail(item.lines["grant"], where, "must be a list, e.g. [{entra_role: <id>}]")
        return None
    out: list[Target] = []
    broken = False
    for index, entry in enumerate(raw):
        target = _entry(check, entry, raw.lines[index], f"{where}[{index}]")
        if target is not None and target in out:
            check.fail(raw.lines[index], f"{where}[{index}]", f"{describe(target)} is listed twice")
            target = None
        broken |= target is None
        if target is not None:
            out.append(target)
    return None if broken else tuple(out)


def _entry(check: Checker, entry: object, line: int, where: str) -> Target | None:
    if not isinstance(entry, LineMap):
        check.fail(line, where, "must be a mapping, e.g. {entra_role: <roleDefinitionId>}")
        return None
    kinds = [k for k in TARGET_KINDS if k in entry]
    if len(kinds) != 1:
        check.fail(line, where, f"name exactly one of: {', '.join(TARGET_KINDS)}")
        return None
    kind = kinds[0]
    check.keys(entry, where, (kind, *_EXTRA[kind]))
    if any(k not in (kind, *_EXTRA[kind]) for k in entry):
        return None
    values = {k: _text(check, entry, k, where) for k in entry}
    if any(v is None for v in values.values()):
        return None
    problem = _problem(kind, values)
    if problem is not None:
        key, message = problem
        check.fail(entry.lines.get(key, line), f"{where}.{key}", message)
        return None
    return Target(
        kind=kind,
        ref=values[kind] or "",
        scope=_scope(kind, values),
        access=values.get("access") or ("member" if kind == "entra_group" else None),
        enforce=values.get("enforce"),
    )


def _text(check: Checker, entry: LineMap, key: str, where: str) -> str | None:
    value = entry[key]
    if not isinstance(value, str) or not value.strip() or "\n" in value:
        check.fail(
            entry.lines.get(key, entry.line),
            f"{where}.{key}",
            f"must be one line of text, not {shown(value)}",
        )
        return None
    return value.strip()


def _scope(kind: str, values: dict[str, str | None]) -> str | None:
    if kind == "entra_role":
        return values.get("scope") or "/"
    return values.get("scope")


def _problem(kind: str, values: dict[str, str | None]) -> tuple[str, str] | None:
    """(key, message) of the first thing wrong with one entry's values."""
    ref = values[kind] or ""
    if kind in ("entra_role", "entra_group") and not _GUID.fullmatch(ref):
        return kind, f"{shown(ref)} is not an id (a GUID such as 62e90394-69f5-…)"
    if kind == "azure_role" and not (_GUID.fullmatch(ref) or _ARM_ROLE.fullmatch(ref)):
        return kind, f"{shown(ref)} is not a role definition id (a GUID or …/roleDefinitions/GUID)"
    if kind == "azure_role" and not values.get("scope"):
        return kind, "scope is required, e.g. /subscriptions/<id>/resourceGroups/<name>"
    if kind == "slack_usergroup" and not _USERGROUP.fullmatch(ref):
        return kind, f"{shown(ref)} is not a Slack user group id (e.g. S0123ABC)"
    if kind == "webhook" and not _https(ref):
        return kind, f"{shown(ref)} is not an https:// URL"
    scope = values.get("scope")
    if scope is not None and not scope.startswith("/"):
        return "scope", f"{shown(scope)} must start with / (e.g. / or /subscriptions/<id>)"
    if values.get("access") not in (None, "member", "owner"):
        return "access", f"must be member or owner, not {shown(values['access'])}"
    if values.get("enforce") not in (None, "remove"):
        return "enforce", f"must be remove, not {shown(values['enforce'])}"
    return None


def _https(url: str) -> bool:
    """https with a host; plain http only to this machine (a local receiver, tests)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if not parts.hostname:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)


def stored(targets: tuple[Target, ...]) -> list[dict[str, str]] | None:
    """What the role row keeps (None: no `grant:`), in the file's own spelling."""
    return [to_json(t) for t in targets] or None


def shown_grants(raw: list[dict[str, str]] | None) -> tuple[str, ...]:
    """A role's targets as the plan shows them, e.g. ("webhook https://…",)."""
    return tuple(describe(from_json(t)) for t in raw or ())


def granted(targets: tuple[Target, ...]) -> str:
    """The tail of a new role's plan line: where its activations take effect."""
    return "; grant: " + ", ".join(describe(t) for t in targets) if targets else ""
