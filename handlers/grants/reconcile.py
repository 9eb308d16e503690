"""Reconciliation: what pim-bot believes it granted, against who really holds each target.

Every PIM_RECONCILE_INTERVAL one replica (handlers.periodic) reads the real members of each
grant target through its provider and compares:

- Someone holds a target that pim-bot did not grant: Entra's "Roles are being assigned outside
  of Privileged Identity Management" alert, high severity, to the admins and in the audit log
  (once a day per person and target, so a standing exception does not flood anyone). With
  `enforce: remove` on the target, pim-bot also takes that access away, and audits it.
- A grant pim-bot believes Provisioned is missing: it is queued again (the grant worker
  re-runs it, idempotently) and the admins are alerted.

The grant table is read through a narrow `GrantBook`, so this module knows nothing of its
columns. The book is read before and again after the members: a grant that finished, or was
revoked, while the members were being read is neither "outside" nor "missing". Restoring is a
guarded update in the book (only a grant still Provisioned), so a revoke that raced us wins.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cards.views import ALERT, Notification
from handlers.clock import Clock
from handlers.directory import admins
from handlers.grants.provider import GrantJob, Person, Provider, ProviderError, Target
from handlers.records import SYSTEM_ACTOR, audit, notify
from storage.models import AuditEvent, Principal
from storage.uow import UnitOfWork

__all__ = ["GrantBook", "ReconcileReport", "TargetState", "reconcile", "target_key"]

logger = logging.getLogger(__name__)

OUTSIDE, REMOVED, RESTORED = "grant.outside_pim", "grant.outside_pim_removed", "grant.restored"
ALERT_CODE = "roles_assigned_outside_pim"
_ALERT_EVERY = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class TargetState:
    """What pim-bot believes about one target of one role. Member ids are what the target's
    provider reports: Entra object ids, or Slack user ids for user groups."""

    target: Target
    role_id: str
    role_name: str
    provisioned: Mapping[str, str]  # member id -> grant id, believed in place now
    expected: frozenset[str] = frozenset()  # granting, revoking or retrying: not "outside"


class GrantBook(Protocol):
    """The grant table, as reconciliation needs it."""

    async def states(self, s: AsyncSession) -> list[TargetState]: ...

    async def restore(self, s: AsyncSession, *, grant_id: str, now: datetime) -> bool:
        """Queue a Provisioned grant to be granted again; False when it is no longer
        Provisioned (revoked meanwhile)."""
        ...


@dataclass
class ReconcileReport:
    targets: int = 0
    outside: list[tuple[str, str]] = field(default_factory=list)  # (target key, member)
    removed: list[tuple[str, str]] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)  # grant ids
    unreadable: list[str] = field(default_factory=list)  # target keys


def target_key(target: Target) -> str:
    parts = [target.kind, target.ref] + [p for p in (target.scope, target.access) if p]
    return ":".join(parts)


async def reconcile(
    uow: UnitOfWork, clock: Clock, *, book: GrantBook, providers: Mapping[str, Provider]
) -> ReconcileReport:
    report = ReconcileReport()
    async with uow.read() as s:
        before = await book.states(s)
    actual: dict[str, frozenset[str]] = {}
    for state in before:
        key = target_key(state.target)
        provider = providers.get(state.target.kind)
        if key in actual or provider is None:
            continue
        try:
            members = await provider.members(state.target)
        except Exception as err:  # a provider that is down: this target waits for next time
            logger.warning("reconcile: cannot read %s: %s", key, err)
            report.unreadable.append(key)
            continue
        if members is not None:  # None: the target cannot be read back (webhooks)
            actual[key] = members
    async with uow.read() as s:
        after = {target_key(st.target): st for st in await book.states(s)}
    for state in before:
        key = target_key(state.target)
        if key in actual:
            report.targets += 1
            await _one(
                uow,
                clock,
                state=state,
                again=after.get(key),
                members=actual.pop(key),
                providers=providers,
                book=book,
                report=report,
            )
    return report


async def _one(
    uow: UnitOfWork,
    clock: Clock,
    *,
    state: TargetState,
    again: TargetState | None,
    members: frozenset[str],
    providers: Mapping[str, Provider],
    book: GrantBook,
    report: ReconcileReport,
) -> None:
    later = again or TargetState(state.target, state.role_id, state.role_name, {})
    ours = set(state.provisioned) | state.expected | set(later.provisioned) | later.expected
    outside = sorted(members - ours)
    missing = {
        m: g
        for m, g in state.provisioned.items()
        if m not in members and later.provisioned.get(m) == g
    }
    removed = []
    if outside and state.target.enforce == "remove":
        removed = [m for m in outside if await _take_away(providers, state, m, clock.now())]
    if not outside and not missing:
        return
    key = target_key(state.target)
    async with uow.transaction() as s:
        now = clock.now()
        for member in outside:
            await _outside(s, now=now, state=state, member=member, removed=member in removed)
        for member, grant_id in sorted(missing.items()):
            if await book.restore(s, grant_id=grant_id, now=now):
                await _restored(s, now=now, state=state, member=member, grant_id=grant_id)
                report.restored.append(grant_id)
    report.outside += [(key, m) for m in outside]
    report.removed += [(key, m) for m in removed]


async def _take_away(
    providers: Mapping[str, Provider], state: TargetState, member: str, now: datetime
) -> bool:
    slack = state.target.kind == "slack_usergroup"
    job = GrantJob(
        grant_id=f"outside:{target_key(state.target)}:{member}"[:200],
        action="revoke",
        target=state.target,
        role_id=state.role_id,
        role_name=state.role_name,
        request_id="",
        person=Person(
            email="",
            name=member,
            slack_id=member if slack else None,
            teams_id=None if slack else member,
        ),
        start=now,
        end=None,
        justification="assigned outside pim-bot (enforce: remove)",
    )
    try:
        await providers[state.target.kind].revoke(job)
        return True
    except (ProviderError, OSError) as err:
        logger.warning(
            "reconcile: could not remove %s from %s: %s", member, target_key(state.target), err
        )
        return False


async def _who(s: AsyncSession, member: str) -> Principal | None:
    return await s.scalar(
        select(Principal)
        .where(or_(Principal.teams_id == member, Principal.slack_id == member))
        .limit(1)
    )


async def _outside(
    s: AsyncSession, *, now: datetime, state: TargetState, member: str, removed: bool
) -> None:
    person = await _who(s, member)
    who = f"{person.display_name} ({person.email})" if person else f"account {member}"
    subject = f"{person.email if person else member}/{state.role_id}"
    key = target_key(state.target)
    if removed:
        await audit(
            s,
            at=now,
            actor=SYSTEM_ACTOR,
            action=REMOVED,
            target=subject,
            member=member,
            grant_target=key,
        )
    elif await _told_since(s, since=now - _ALERT_EVERY, subject=subject, key=key):
        return  # a standing exception: audited and told once a day
    await audit(
        s,
        at=now,
        actor=SYSTEM_ACTOR,
        action=OUTSIDE,
        target=subject,
        member=member,
        grant_target=key,
        removed=removed,
        severity="high",
    )
    then = (
        "pim-bot removed it (enforce: remove)."
        if removed
        else "Remove it there, or set `enforce: remove` on the target to have pim-bot do so."
    )
    notify(
        s,
        now=now,
        recipients=await admins(s),
        note=Notification(
            kind=ALERT,
            headline=f"Roles are being assigned outside of PIM: {who} holds "
            f"{state.role_name} ({key}), which pim-bot did not grant.",
            details=(f"high · {ALERT_CODE}", then),
        ),
    )


async def _told_since(s: AsyncSession, *, since: datetime, subject: str, key: str) -> bool:
    earlier = await s.scalars(
        select(AuditEvent.details).where(
            AuditEvent.action == OUTSIDE, AuditEvent.target == subject, AuditEvent.at >= since
        )
    )
    return any(d.get("grant_target") == key for d in earlier)


async def _restored(
    s: AsyncSession, *, now: datetime, state: TargetState, member: str, grant_id: str
) -> None:
    person = await _who(s, member)
    who = f"{person.display_name} ({person.email})" if person else f"account {member}"
    key = target_key(state.target)
    await audit(
        s,
        at=now,
        actor=SYSTEM_ACTOR,
        action=RESTORED,
        target=f"{person.email if person else member}/{state.role_id}",
        grant=grant_id,
        member=member,
        grant_target=key,
    )
    notify(
        s,
        now=now,
        recipients=await admins(s),
        note=Notification(
            kind=ALERT,
            headline=f"{who} should hold {state.role_name} ({key}) through pim-bot, "
            "but it was missing there: pim-bot is granting it again.",
            details=("high · grant_missing", f"grant {grant_id}"),
        ),
    )
