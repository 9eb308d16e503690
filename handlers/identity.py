"""Who is this chat user? Matching platform ids to principals, learning ids by email.

An email lookup may fill in an id nobody has yet; it never replaces one. Whoever holds an
account whose profile shows an admin's email must not become that admin, so a lookup that
disagrees with a binding is refused, recorded and raised to the admins. Only an admin
rebinds (handlers.linking).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from cards.views import ALERT, Notification
from handlers.clock import Clock
from handlers.directory import admins, principal_by_email
from handlers.posted_cards import queue_missed_approval_cards
from handlers.records import SYSTEM_ACTOR, audit, notify
from storage.models import AuditEvent, ConversationRef, Principal
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)

Platform = Literal["slack", "teams"]
LINK_REFUSED = "principal.link_refused"
# Every refused attempt is audited; admins hear about one account trying one person once a
# day, so an attacker cannot flood their DMs.
_ALERT_EVERY = timedelta(hours=24)
LABEL: dict[str, str] = {"slack": "Slack", "teams": "Teams"}


def _column(platform: Platform):  # type: ignore[no-untyped-def]
    return Principal.slack_id if platform == "slack" else Principal.teams_id


# Every chat request starts here: build these statements once.
_EMAIL_FOR = {
    platform: select(Principal.email).where(_column(platform) == bindparam("user"))
    for platform in ("slack", "teams")
}


async def email_for(uow: UnitOfWork, *, platform: Platform, user_id: str) -> str | None:
    rows = await uow.lookup_rows(_EMAIL_FOR[platform], {"user": user_id})
    return str(rows[0].email) if rows else None


async def link_by_email(
    uow: UnitOfWork, clock: Clock, *, platform: Platform, user_id: str, email: str
) -> str | None:
    """Remember that this platform user is the principal with this email (found by the
    platform's email lookup). Returns the principal's email, or None if nobody has it or the
    lookup conflicts with an id already bound (then it is refused and admins are alerted)."""
    now = clock.now()
    async with uow.transaction() as s:
        person = await principal_by_email(s, email)
        if person is None:
            return None
        column = "slack_id" if platform == "slack" else "teams_id"
        bound = getattr(person, column)
        if bound == user_id:
            return person.email
        holder = await s.scalar(select(Principal).where(_column(platform) == user_id))
        if bound is not None or (holder is not None and holder.id != person.id):
            await refuse_link(
                s,
                now=now,
                person=person,
                platform=platform,
                user_id=user_id,
                bound=bound,
                holder=holder,
            )
            return None
        setattr(person, column, user_id)
        await audit(
            s,
            at=now,
            actor=SYSTEM_ACTOR,
            action=f"principal.{column}_linked",
            target=person.email,
            **{column: user_id},
        )
        return person.email


async def refuse_link(
    s: AsyncSession,
    *,
    now: datetime,
    person: Principal,
    platform: Platform,
    user_id: str,
    bound: str | None,
    holder: Principal | None,
) -> None:
    """Record a link that would replace a binding (chat's email lookup, the directory sync)
    and tell the admins, at most once a day per account and person."""
    details: dict[str, Any] = {"platform": platform, "presented_id": user_id, "bound_id": bound}
    if holder is not None and holder.id != person.id:
        details["held_by"] = holder.email
    logger.warning(
        "refused to link %s user %s to %s: bound to %s",
        platform,
        user_id,
        person.email,
        bound or details.get("held_by"),
    )
    told = await _alerted_since(
        s, since=now - _ALERT_EVERY, target=person.email, platform=platform, user_id=user_id
    )
    await audit(s, at=now, actor=SYSTEM_ACTOR, action=LINK_REFUSED, target=person.email, **details)
    if told:
        return
    label = LABEL[platform]
    headline = (
        f"{label} user {user_id} has the email of {person.display_name} "
        f"({person.email}), who is linked to {bound or 'another account'}. "
        "pim-bot refused to let it act as them."
    )
    fix = (
        f"If it really is their new account, link it: `pim-bot people link {person.email} "
        f"{platform}:{user_id}` or `link {person.email} {platform}:{user_id}` in chat."
    )
    notify(
        s,
        now=now,
        recipients=await admins(s),
        note=Notification(kind=ALERT, headline=headline, details=("high · identity", fix)),
    )


async def _alerted_since(
    s: AsyncSession, *, since: datetime, target: str, platform: str, user_id: str
) -> bool:
    earlier = await s.scalars(
        select(AuditEvent.details).where(
            AuditEvent.action == LINK_REFUSED, AuditEvent.target == target, AuditEvent.at >= since
        )
    )
    return any(d.get("platform") == platform and d.get("presented_id") == user_id for d in earlier)


async def remember_conversation(
    uow: UnitOfWork,
    clock: Clock,
    *,
    platform: Platform,
    key: str,
    ref: dict[str, Any],
    user_id: str | None = None,
) -> None:
    """Keep the latest address of a person (key: their platform id) or of a channel (key: the
    conversation id), so messages can reach them later without them writing first."""
    now = clock.now()
    async with uow.transaction() as s:
        principal_id = None
        if user_id is not None:
            principal_id = await s.scalar(select(Principal.id).where(_column(platform) == user_id))
        row = await s.scalar(
            select(ConversationRef).where(
                ConversationRef.transport == platform, ConversationRef.key == key
            )
        )
        if row is None:
            s.add(
                ConversationRef(
                    transport=platform, key=key, principal_id=principal_id, ref=ref, updated_at=now
                )
            )
            if principal_id is not None:  # first contact: the approval cards they missed
                await queue_missed_approval_cards(
                    s, principal_id=principal_id, transport=platform, now=now
                )
        else:
            row.ref, row.updated_at = ref, now
            row.principal_id = principal_id or row.principal_id


async def conversation_of(
    uow: UnitOfWork,
    *,
    platform: Platform,
    principal_id: int | None = None,
    key: str | None = None,
) -> dict[str, Any] | None:
    async with uow.read() as s:
        stmt = select(ConversationRef.ref).where(ConversationRef.transport == platform)
        if principal_id is not None:
            stmt = stmt.where(ConversationRef.principal_id == principal_id)
        else:
            stmt = stmt.where(ConversationRef.key == key)
        return await s.scalar(stmt.order_by(ConversationRef.updated_at.desc()).limit(1))
