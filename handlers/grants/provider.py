"""The small contract between the grant engine and the systems that hold real access.

The engine never imports an implementation: the process wires one provider per target kind
(Entra roles, PIM for Groups, Azure roles, Slack user groups, webhooks) at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

GrantAction = Literal["grant", "extend", "revoke"]
TargetKind = Literal["entra_role", "entra_group", "azure_role", "slack_usergroup", "webhook"]
TARGET_KINDS: tuple[TargetKind, ...] = (
    "entra_role",
    "entra_group",
    "azure_role",
    "slack_usergroup",
    "webhook",
)


@dataclass(frozen=True, slots=True)
class Target:
    """One `grant:` entry of a role, as the policy file names it.

    `ref` is the thing granted: a roleDefinitionId (entra_role, azure_role), a group id
    (entra_group), a user group id (slack_usergroup) or a URL (webhook). `scope` is a
    directoryScopeId (default "/") or an ARM scope; `access` is "member" or "owner" for groups.
    `enforce` is "remove" when access found outside pim-bot is to be taken away.
    """

    kind: TargetKind
    ref: str
    scope: str | None = None
    access: str | None = None
    enforce: str | None = None


@dataclass(frozen=True, slots=True)
class Person:
    """Who receives the access. `teams_id` is the Entra object id."""

    email: str
    name: str
    slack_id: str | None = None
    teams_id: str | None = None


@dataclass(frozen=True, slots=True)
class GrantJob:
    """One grant, extension or revoke of one target for one activation.

    `grant_id` is stable across retries and replicas: providers use it as their idempotency
    key (a webhook's `webhook-id` is derived from it and the action, and for an extension
    from the new end too). `end` is the activation's end as it stands when the job is claimed.
    """

    grant_id: str
    action: GrantAction
    target: Target
    person: Person
    role_id: str
    role_name: str
    request_id: str
    start: datetime
    end: datetime | None
    justification: str | None = None
    ticket: str | None = None


class ProviderError(Exception):
    """A grant or revoke that did not take effect.

    `retry_after` (seconds) is the remote's own hint (429/503 Retry-After). `permanent` marks
    failures a retry cannot fix (403, a target that does not exist): the grant goes to Failed.
    """

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class Provider(Protocol):
    """Grant, extend, revoke and read the real holders of one kind of target.

    `grant`, `extend` and `revoke` are idempotent: granting what is already granted, or
    revoking what is already gone, succeeds. `extend` moves the end of a grant already made to
    `job.end` (the activation was extended or renewed); when the target no longer holds it
    (it ended there at the old end), `extend` grants it again until the new end.

    `members` returns the platform ids that hold the target now
    (Entra object ids, or Slack user ids for user groups), or None when the target cannot be
    read back (webhooks).
    """

    async def grant(self, job: GrantJob) -> None: ...

    async def extend(self, job: GrantJob) -> None: ...

    async def revoke(self, job: GrantJob) -> None: ...

    async def members(self, target: Target) -> frozenset[str] | None: ...
