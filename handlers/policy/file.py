"""Reading a policy file: YAML in, checked specs out, or every mistake by line.

The whole file is checked before anything touches the database, and all mistakes are reported
at once, so fixing a file takes one round trip rather than one per typo (handlers.policy.checker
collects them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import yaml

from handlers.errors import PolicyError
from handlers.grants.provider import Target
from handlers.policy.checker import Checker, shown
from handlers.policy.directory import (
    DirectorySpec,
    GroupAssignmentSpec,
    group_assignment,
    parse_directory,
    unique_groups,
)
from handlers.policy.grants import check_grants
from handlers.policy.limits import DEFAULT_MAX_BYTES, too_big
from handlers.policy.reviews_section import check_reviews
from handlers.policy.yaml_lines import LineList, LineMap
from handlers.policy.yaml_stream import LimitExceeded, load_checked
from handlers.reviews.definitions import ReviewSpec
from handlers.settings import RoleSettings, SettingsError
from vocab.states import ScheduleKind

TOP_LEVEL = ("admins", "principals", "roles", "assignments", "reviews", "directory")
_PRINCIPAL_KEYS = ("email", "name", "slack_id", "teams_id")
_ROLE_KEYS = ("id", "name", "description", "settings", "grant")
_ASSIGNMENT_KEYS = ("principal", "role", "type", "end")
_KINDS = (ScheduleKind.ELIGIBLE.value, ScheduleKind.ACTIVE.value)
_ROLE_ID = re.compile(r"[a-z0-9][a-z0-9\-_.]*")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True, slots=True)
class PrincipalSpec:
    email: str
    name: str
    slack_id: str | None
    teams_id: str | None
    admin: bool
    line: int


@dataclass(frozen=True, slots=True)
class RoleSpec:
    id: str
    name: str
    description: str
    settings: RoleSettings
    line: int
    grants: tuple[Target, ...] = ()  # handlers.policy.grants


@dataclass(frozen=True, slots=True)
class AssignmentSpec:
    principal: str
    role: str
    kind: str
    end: datetime | None
    line: int
    path: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.principal, self.role, self.kind)


@dataclass(frozen=True, slots=True)
class PolicyDoc:
    principals: list[PrincipalSpec]
    roles: list[RoleSpec]
    assignments: list[AssignmentSpec]
    reviews: list[ReviewSpec] = field(default_factory=list)
    directory: list[DirectorySpec] | None = None  # None: the file leaves the sources alone
    group_assignments: list[GroupAssignmentSpec] = field(default_factory=list)


def policy_failure(source: str, errors: list[tuple[int, str]]) -> PolicyError:
    """One error listing every problem, first line a summary, then one `file:line: ...` each."""
    count = f"{len(errors)} error{'s' if len(errors) != 1 else ''}"
    lines = [f"{source}: {count}, nothing changed"]
    lines += [f"{source}:{line}: {message}" for line, message in sorted(errors, key=lambda e: e[0])]
    return PolicyError("\n".join(lines))


def read_policy_file(path: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """The text of a policy file; PolicyError, before reading it all, when it is larger than
    max_bytes. OSError and UnicodeDecodeError as open() and decode() raise them."""
    with open(path, "rb") as file:
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise policy_failure(path, [(1, too_big(max_bytes))])
    return data.decode("utf-8")


def parse_policy(
    text: str, *, source: str, now: datetime, max_bytes: int = DEFAULT_MAX_BYTES
) -> PolicyDoc:
    """Check the whole file; raise PolicyError listing every mistake with its line number.

    A file past a limit (handlers.policy.limits) is refused at the first excess alone: the
    rest of it is not worth reading. Assignments may only name principals and roles defined in
    the same file, so a file can be checked on its own, before the database is opened.
    """
    if len(text) > max_bytes or len(text.encode()) > max_bytes:
        raise policy_failure(source, [(1, too_big(max_bytes))])
    try:
        root, duplicates = load_checked(text)  # the limits first, on the same pass
    except LimitExceeded as excess:
        raise policy_failure(source, [(excess.line, excess.message)]) from None
    except yaml.YAMLError as err:
        raise policy_failure(source, [_not_yaml(err, text)]) from None
    check = Checker(list(duplicates))
    if root is None:
        # An empty file is far more likely an accident than "remove everything" (--prune).
        raise policy_failure(
            source, [(1, "the file is empty; a policy lists at least admins, principals or roles")]
        )
    if not isinstance(root, LineMap):
        check.fail(1, "", "the file must be a mapping with " + ", ".join(TOP_LEVEL))
        raise policy_failure(source, check.errors)
    check.keys(root, "", TOP_LEVEL)
    principals = _principals(check, root)
    roles = _roles(check, root, {p.email for p in principals})
    groups: list[GroupAssignmentSpec] = []
    assignments = _assignments(check, root, {p.email for p in principals}, roles, now, groups)
    reviews = check_reviews(check, root, roles=set(roles), emails={p.email for p in principals})
    directory = parse_directory(check, root)
    groups = unique_groups(check, groups)
    if check.errors:
        raise policy_failure(source, check.errors)
    return PolicyDoc(
        principals,
        [r for r in roles.values() if r is not None],
        assignments,
        reviews,
        directory,
        groups,
    )


def _not_yaml(err: yaml.YAMLError, text: str) -> tuple[int, str]:
    if isinstance(err, yaml.reader.ReaderError):  # a character YAML forbids, by position
        line = text.count("\n", 0, max(err.position, 0)) + 1
        code = err.character if isinstance(err.character, int) else ord(err.character)
        return line, f"not valid YAML: character #x{code:04x} is not allowed"
    mark = getattr(err, "problem_mark", None)
    line = mark.line + 1 if mark is not None else 1
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return line, f"not valid YAML: {problem}"


# --- checks, one section of the file at a time ----------------------------------------------


def _principals(check: Checker, root: LineMap) -> list[PrincipalSpec]:
    admins = _admins(check, root)
    out: list[PrincipalSpec] = []
    seen: dict[str, dict[str, int]] = {"email": {}, "slack_id": {}, "teams_id": {}}
    for path, item in check.items(root, "principals"):
        check.keys(item, path, _PRINCIPAL_KEYS)
        email = check.text(item, "email", path)
        if email is not None and not _EMAIL.fullmatch(email):
            check.fail(
                item.lines["email"], f"{path}.email", f"{shown(email)} is not an email address"
            )
            email = None
        email = email.lower() if email else None
        name = check.text(item, "name", path)
        ids = {k: check.text(item, k, path, required=False) for k in ("slack_id", "teams_id")}
        for key, value in (("email", email), *ids.items()):
            check.unique(seen[key], value, item.lines.get(key, item.line), f"{path}.{key}")
        if email and name:
            out.append(
                PrincipalSpec(
                    email,
                    name,
                    ids["slack_id"],
                    ids["teams_id"],
                    admin=email in admins,
                    line=item.line,
                )
            )
    for email, line in admins.items():
        if email not in seen["email"]:
            check.fail(line, "admins", f"{email} is not listed under principals; add them there")
    return out


def _admins(check: Checker, root: LineMap) -> dict[str, int]:
    value = root.get("admins")
    if value is None:
        return {}
    if not isinstance(value, LineList):
        check.fail(root.lines["admins"], "admins", "must be a list of email addresses")
        return {}
    out: dict[str, int] = {}
    for index, email in enumerate(value):
        if isinstance(email, str) and _EMAIL.fullmatch(email.strip()):
            out.setdefault(email.strip().lower(), value.lines[index])
        else:
            check.fail(
                value.lines[index], f"admins[{index}]", f"{shown(email)} is not an email address"
            )
    return out


def _roles(check: Checker, root: LineMap, emails: set[str]) -> dict[str, RoleSpec | None]:
    """Role specs by id; None for a role that is listed but broken (so assignments to it
    are not reported as naming an unknown role)."""
    out: dict[str, RoleSpec | None] = {}
    names: dict[str, int] = {}
    for path, item in check.items(root, "roles"):
        check.keys(item, path, _ROLE_KEYS)
        role_id = check.text(item, "id", path)
        if role_id is not None and not _ROLE_ID.fullmatch(role_id):
            check.fail(
                item.lines["id"],
                f"{path}.id",
                f"{shown(role_id)} is not a role id: use lower-case letters, digits, - _ .",
            )
            role_id = None
        if role_id is not None and role_id in out:
            check.fail(item.lines["id"], f"{path}.id", f"{role_id} is listed twice")
            role_id = None
        name = check.text(item, "name", path)
        check.unique(names, name, item.lines.get("name", item.line), f"{path}.name")
        description = check.text(item, "description", path, required=False, multiline=True) or ""
        settings = _settings(check, item, path, emails)
        grants = check_grants(check, item, path)
        if role_id is not None:
            out[role_id] = (
                RoleSpec(role_id, name, description, settings, item.line, grants)
                if name is not None and settings is not None and grants is not None
                else None
            )
    return out


def _settings(check: Checker, item: LineMap, path: str, emails: set[str]) -> RoleSettings | None:
    raw = item.get("settings")
    if raw is None:
        return RoleSettings()
    line = item.lines["settings"]
    if not isinstance(raw, LineMap):
        check.fail(line, f"{path}.settings", "must be a mapping, e.g. {max_duration: 4h}")
        return None
    # RoleSettings stops at its first problem; drop the field it named and ask again, so every
    # bad field in the block is reported in one go.
    remaining, broken = dict(raw), False
    while True:
        try:
            settings = RoleSettings.from_mapping(remaining)
            break
        except SettingsError as err:
            broken = True
            key, message = _blame(str(err), remaining)
            where = f"{path}.settings.{key}" if key else f"{path}.settings"
            check.fail(
                raw.lines.get(key, line),
                where,
                message if len(message) <= 200 else message[:199] + "…",
            )
            if key is None:
                return None
            del remaining[key]
    for approver in settings.approvers:
        if approver not in emails:
            check.fail(
                raw.lines["approvers"],
                f"{path}.settings.approvers",
                f"{approver} is not listed under principals",
            )
            broken = True
    return None if broken else settings


def _blame(message: str, raw: dict[Any, Any]) -> tuple[Any, str]:
    """Which setting a SettingsError is about, and the message without its name in front."""
    unknown = re.match(r"unknown setting '([^']*)'", message)
    if unknown and unknown.group(1) in raw:
        return unknown.group(1), message
    # Longest first, so a setting whose name begins another's never takes the blame for it.
    for key in sorted(raw, key=lambda k: -len(str(k))):
        if isinstance(key, str) and message.startswith(key):
            return key, message[len(key) :].lstrip(" :") or message
    return None, message


def _assignments(
    check: Checker,
    root: LineMap,
    emails: set[str],
    roles: dict[str, RoleSpec | None],
    now: datetime,
    groups: list[GroupAssignmentSpec],
) -> list[AssignmentSpec]:
    out: list[AssignmentSpec] = []
    seen: dict[tuple[str, str, str], int] = {}
    for path, item in check.items(root, "assignments"):
        if "group" in item and "principal" not in item:  # handlers.policy.directory
            end, end_ok = _end(check, item, path, now)
            group = group_assignment(check, item, path, roles=roles, end=end, end_ok=end_ok)
            groups += [group] if group is not None else []
            continue
        check.keys(item, path, _ASSIGNMENT_KEYS)
        email = check.text(item, "principal", path)
        email = email.lower() if email else None
        if email is not None and email not in emails:
            check.fail(
                item.lines["principal"],
                f"{path}.principal",
                f"{email} is not listed "
                "under principals (assignments may only name people in this file)",
            )
            email = None
        role_id = check.text(item, "role", path)
        if role_id is not None and role_id not in roles:
            check.fail(
                item.lines["role"],
                f"{path}.role",
                f"{role_id} is not listed under "
                "roles (assignments may only name roles in this file)",
            )
            role_id = None
        kind = check.text(item, "type", path)
        if kind is not None and kind not in _KINDS:
            check.fail(
                item.lines["type"], f"{path}.type", f"must be eligible or active, not {shown(kind)}"
            )
            kind = None
        end, end_ok = _end(check, item, path, now)
        if email is None or role_id is None or kind is None or not end_ok:
            continue
        role = roles[role_id]
        if (
            end is None
            and role is not None
            and not (
                role.settings.allow_permanent_eligible
                if kind == ScheduleKind.ELIGIBLE
                else role.settings.allow_permanent_active
            )
        ):
            check.fail(
                item.line,
                path,
                f"{role_id} does not allow permanent {kind} assignments; give an end date",
            )
            continue
        key = (email, role_id, kind)
        if key in seen:
            check.fail(
                item.line,
                path,
                f"{email} {kind} {role_id} is listed twice (first at line {seen[key]})",
            )
            continue
        seen[key] = item.line
        out.append(AssignmentSpec(email, role_id, kind, end, item.line, path))
    return out


def _end(check: Checker, item: LineMap, path: str, now: datetime) -> tuple[datetime | None, bool]:
    """The end as an aware UTC datetime (or None: permanent), and whether it was acceptable.

    Like `assign ... until DATE` in chat, a date alone means midnight UTC and a time without an
    offset means UTC: the bot never guesses the reader's time zone.
    """
    value = item.get("end")
    if value is None:
        return None, True
    line, where = item.lines["end"], f"{path}.end"
    end: datetime | None = None
    try:
        if isinstance(value, datetime):
            end = value
        elif isinstance(value, date):
            end = datetime(value.year, value.month, value.day)
        elif isinstance(value, str):
            end = datetime.fromisoformat(value.strip())
        if end is not None:
            end = (end if end.tzinfo else end.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):  # month 13, or year 9999 pushed past by an offset
        end = None
    if end is None:
        check.fail(
            line,
            where,
            f"{shown(value)} is not a date; use e.g. 2027-06-30 or 2027-06-30T12:00:00Z",
        )
        return None, False
    if end <= now:
        check.fail(line, where, f"{end.isoformat().replace('+00:00', 'Z')} is in the past")
        return None, False
    return end, True
