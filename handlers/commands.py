"""What a person asked for, once parsed: one frozen dataclass per verb of the command grammar
(README, "Commands").

These carry raw text (role names, mention names) on purpose: resolving them needs the database and
the directory, which is the engine's job, not the parser's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, TypeAlias

from vocab.states import ReviewDecision, ScheduleKind

__all__ = [
    "Activate",
    "Approvals",
    "Approve",
    "Assign",
    "Audit",
    "Cancel",
    "ChatAccount",
    "Command",
    "Deactivate",
    "Deny",
    "Digest",
    "Extend",
    "ExtendAssignment",
    "Grants",
    "Help",
    "Link",
    "Remove",
    "Renew",
    "Requests",
    "Review",
    "Reviews",
    "Roles",
    "StartTime",
    "Ticket",
    "UserRef",
]


@dataclass(frozen=True, slots=True)
class Ticket:
    """``ticket:jira:OPS-12`` is Ticket("jira", "OPS-12"); ``ticket:INC123`` has no system."""

    system: str | None
    number: str


@dataclass(frozen=True, slots=True)
class UserRef:
    """A person as written in the command.

    email: lower-cased address; slack: the user id from ``<@U123>``; teams: the display name from
    ``<at>Name</at>``, since a Teams mention in plain text carries no id.
    """

    kind: Literal["email", "slack", "teams"]
    value: str


@dataclass(frozen=True, slots=True)
class Help:
    topic: str | None = None


@dataclass(frozen=True, slots=True)
class Roles:
    pass


@dataclass(frozen=True, slots=True)
class Activate:
    """No role means "open the form"; no duration means the role's default_duration."""

    role: str | None = None
    duration: timedelta | None = None
    ticket: Ticket | None = None
    justification: str | None = None
    # as typed ("99h"), echoed back in refusals; not part of what the command means
    duration_text: str | None = field(default=None, compare=False)
    start: StartTime | None = None  # `at 14:00`, `at tomorrow 09:00`: a later start


@dataclass(frozen=True, slots=True)
class StartTime:
    """A local wall-clock start (PIM_TIMEZONE): `tomorrow` set, that day; else the next
    time the clock shows hour:minute."""

    hour: int
    minute: int
    tomorrow: bool = False


@dataclass(frozen=True, slots=True)
class Extend:
    """More time on a running activation (Entra's selfExtend); no duration: the default."""

    role: str
    duration: timedelta | None = None
    justification: str | None = None
    duration_text: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Renew:
    """More time on an assignment (eligibility first) nearing its end (Entra's selfRenew):
    a request admins decide. No duration: as long as the assignment was."""

    role: str
    duration: timedelta | None = None
    justification: str | None = None


@dataclass(frozen=True, slots=True)
class ExtendAssignment:
    """An admin moves the end of someone's assignment (Entra's adminExtend); kind None:
    the eligibility if there is one, else the active assignment."""

    user: UserRef
    role: str
    kind: ScheduleKind | None = None
    duration: timedelta | None = None
    until: datetime | None = None
    justification: str | None = None


@dataclass(frozen=True, slots=True)
class Requests:
    pass


@dataclass(frozen=True, slots=True)
class Cancel:
    request_id: str


@dataclass(frozen=True, slots=True)
class Approvals:
    pass


@dataclass(frozen=True, slots=True)
class Approve:
    request_id: str
    justification: str | None = None


@dataclass(frozen=True, slots=True)
class Deny:
    """A denial always says why, so the requester knows what to change."""

    request_id: str
    justification: str


@dataclass(frozen=True, slots=True)
class Deactivate:
    role: str


@dataclass(frozen=True, slots=True)
class Assign:
    """At most one of duration and until is set; neither means a permanent assignment."""

    user: UserRef
    role: str
    kind: ScheduleKind
    duration: timedelta | None = None
    until: datetime | None = None
    justification: str | None = None


@dataclass(frozen=True, slots=True)
class Remove:
    """No kind means whichever assignments the user holds for the role."""

    user: UserRef
    role: str
    kind: ScheduleKind | None = None


@dataclass(frozen=True, slots=True)
class Audit:
    """subject is the raw user or role token; since is how far back to look."""

    subject: str | None = None
    since: timedelta | None = None
    # as typed ("1d"), for the title; not part of what the command means
    since_text: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Digest:
    pass


@dataclass(frozen=True, slots=True)
class Grants:
    """`grants [failed]`: where activations stand in the systems that hold the access."""

    failed: bool = False


@dataclass(frozen=True, slots=True)
class ChatAccount:
    """``slack:U0123ABCD`` or ``teams:<Entra object id>``: one person's account on a platform."""

    platform: Literal["slack", "teams"]
    id: str


@dataclass(frozen=True, slots=True)
class Link:
    """An admin says which chat account is this person's (the only way a bound id changes)."""

    user: UserRef
    account: ChatAccount


@dataclass(frozen=True, slots=True)
class Reviews:
    """My open access review items."""


@dataclass(frozen=True, slots=True)
class Review:
    """Decide one access review item."""

    item_id: int
    decision: ReviewDecision
    reason: str | None = None


Command: TypeAlias = (
    Help
    | Roles
    | Activate
    | Requests
    | Cancel
    | Approvals
    | Approve
    | Deny
    | Deactivate
    | Assign
    | Remove
    | Audit
    | Digest
    | Link
    | Extend
    | Renew
    | ExtendAssignment
    | Reviews
    | Review
    | Grants
)
