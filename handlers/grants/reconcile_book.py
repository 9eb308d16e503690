"""The grant table as reconciliation reads it (handlers.grants.reconcile.GrantBook).

Targets come from the roles' `grant:` lists, so a target nobody holds through pim-bot is still
checked. A person is named by the id their target's provider reports: the Entra object id
(`teams_id`) for Entra and Azure targets, the Slack user id for user groups.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.grants.reconcile import TargetState, target_key
from handlers.grants.targets import from_json, targets_of
from storage.models import Grant, Principal, Role
from storage.uow import note_queued
from vocab.states import GrantStatus

# Rows that may hold access, or are on their way to or from it: never "outside".
_IN_FLIGHT = (
    GrantStatus.PENDING_PROVISIONING,
    GrantStatus.PENDING_EXTENSION,
    GrantStatus.PENDING_REVOKE,
    GrantStatus.FAILED,
)


class SqlGrantBook:
    async def states(self, s: AsyncSession) -> list[TargetState]:
        by_key: dict[str, TargetState] = {}
        for role in await s.scalars(
            select(Role).where(Role.grant_targets.is_not(None)).order_by(Role.id)
        ):
            for target in targets_of(role.grant_targets):
                key = target_key(target)
                held = by_key.get(key)
                by_key[key] = held or TargetState(target, role.id, role.display_name, {})
        provisioned: dict[str, dict[str, str]] = {}
        expected: dict[str, set[str]] = {}
        rows = await s.execute(
            select(
                Grant.grant_id,
                Grant.kind,
                Grant.target,
                Grant.status,
                Principal.teams_id,
                Principal.slack_id,
            )
            .join(Principal, Principal.id == Grant.principal_id)
            .where(Grant.status.in_([GrantStatus.PROVISIONED, *_IN_FLIGHT]))
        )
        for grant_id, kind, raw, status, teams_id, slack_id in rows:
            member = slack_id if kind == "slack_usergroup" else teams_id
            if not member:
                continue
            key = target_key(from_json(raw))
            if status == GrantStatus.PROVISIONED:
                provisioned.setdefault(key, {})[member] = grant_id
            else:
                expected.setdefault(key, set()).add(member)
        return [
            TargetState(
                st.target,
                st.role_id,
                st.role_name,
                provisioned.get(key, {}),
                frozenset(expected.get(key, ())),
            )
            for key, st in by_key.items()
        ]

    async def restore(self, s: AsyncSession, *, grant_id: str, now: datetime) -> bool:
        # Only a grant still Provisioned: one revoked since we looked stays revoked.
        result = await s.execute(
            update(Grant)
            .where(Grant.grant_id == grant_id, Grant.status == GrantStatus.PROVISIONED)
            .values(
                status=GrantStatus.PENDING_PROVISIONING,
                attempts=0,
                next_attempt_at=now,
                claimed_by=None,
                last_error="missing at reconciliation; granting again",
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            note_queued(s)
            return True
        return False
