"""Who is this chat user? Matching platform ids to principals, learning ids by email."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import bindparam, select

from handlers.clock import Clock
from handlers.directory import principal_by_email
from handlers.records import audit
from storage.models import ConversationRef, Principal
from storage.uow import UnitOfWork

Platform = Literal["slack", "teams"]


def _column(platform: Platform):  # type: ignore[no-untyped-def]
    return Principal.slack_id if platform == "slack" else Principal.teams_id


# Every chat request starts here: build these statements once.
_EMAIL_FOR = {platform: select(Principal.email).where(_column(platform) == bindparam("user"))
              for platform in ("slack", "teams")}


async def email_for(uow: UnitOfWork, *, platform: Platform, user_id: str) -> str | None:
    statement = _EMAIL_FOR[platform]
    return await uow.run_read(lambda conn: conn.scalar(statement, {"user": user_id}))


async def link_by_email(
    uow: UnitOfWork, clock: Clock, *, platform: Platform, user_id: str, email: str
) -> str | None:
    """Remember that this platform user is the principal with this email (found by the
    platform's email lookup). Returns the principal's email, or None if nobody has it."""
    now = clock.now()
    async with uow.transaction() as s:
        person = await principal_by_email(s, email)
        if person is None:
            return None
        column = "slack_id" if platform == "slack" else "teams_id"
        if getattr(person, column) == user_id:
            return person.email
        holder = await s.scalar(select(Principal).where(_column(platform) == user_id))
        if holder is not None and holder.id != person.id:
            return None  # the id belongs to someone else: trust the policy, not the lookup
        setattr(person, column, user_id)
        await audit(s, at=now, actor="pim-bot", action=f"principal.{column}_linked",
                    target=person.email, **{column: user_id})
        return person.email


async def remember_conversation(
    uow: UnitOfWork, clock: Clock, *, platform: Platform, key: str, ref: dict[str, Any],
    user_id: str | None = None,
) -> None:
    """Keep the latest address of a person (key: their platform id) or of a channel (key: the
    conversation id), so messages can reach them later without them writing first."""
    now = clock.now()
    async with uow.transaction() as s:
        principal_id = None
        if user_id is not None:
            principal_id = await s.scalar(select(Principal.id).where(_column(platform) == user_id))
        row = await s.scalar(select(ConversationRef).where(
            ConversationRef.transport == platform, ConversationRef.key == key))
        if row is None:
            s.add(ConversationRef(transport=platform, key=key, principal_id=principal_id,
                                  ref=ref, updated_at=now))
        else:
            row.ref, row.updated_at = ref, now
            row.principal_id = principal_id or row.principal_id


async def conversation_of(
    uow: UnitOfWork, *, platform: Platform, principal_id: int | None = None,
    key: str | None = None,
) -> dict[str, Any] | None:
    async with uow.read() as s:
        stmt = select(ConversationRef.ref).where(ConversationRef.transport == platform)
        if principal_id is not None:
            stmt = stmt.where(ConversationRef.principal_id == principal_id)
        else:
            stmt = stmt.where(ConversationRef.key == key)
        return await s.scalar(stmt.order_by(ConversationRef.updated_at.desc()).limit(1))
