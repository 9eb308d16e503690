"""An admin says which Slack or Teams account is whose: the only way a bound id changes.

Email lookups only fill in ids nobody holds (handlers.identity); a person who got a new account,
or an account that was bound to the wrong person, is fixed here, on the record.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.assignment import require_admin
from handlers.clock import Clock
from handlers.commands import ChatAccount, UserRef
from handlers.directory import resolve_user
from handlers.identity import LABEL
from handlers.records import audit
from storage.models import ConversationRef, Principal
from storage.uow import UnitOfWork

LINKED = "principal.linked"
UNLINKED = "principal.unlinked"


async def link_account(
    uow: UnitOfWork,
    clock: Clock,
    *,
    actor: str,
    user: UserRef,
    account: ChatAccount,
    operator: bool = False,
) -> str:
    """Bind `account` to the person `user` names, and say what changed. `actor` is an admin's
    email in chat; with operator=True (the CLI, run by whoever holds the database) any name."""
    now = clock.now()
    async with uow.transaction() as s:
        if not operator:
            await require_admin(s, actor, "link people to chat accounts")
        person = await resolve_user(s, user)
        return await _link(s, now=now, actor=actor, person=person, account=account)


async def _link(
    s: AsyncSession, *, now: datetime, actor: str, person: Principal, account: ChatAccount
) -> str:
    column = "slack_id" if account.platform == "slack" else "teams_id"
    who = f"{person.display_name} ({person.email})"
    label = LABEL[account.platform]
    old = getattr(person, column)
    if old == account.id:
        return f"{who} is already {label} user {account.id}; nothing changed."
    holder = await s.scalar(
        select(Principal).where(getattr(Principal, column) == account.id, Principal.id != person.id)
    )
    if holder is not None:
        setattr(holder, column, None)
        await s.flush()  # free the unique id before giving it to the new holder
        await audit(
            s,
            at=now,
            actor=actor,
            action=UNLINKED,
            target=holder.email,
            platform=account.platform,
            old_id=account.id,
            now_linked_to=person.email,
        )
    setattr(person, column, account.id)
    await _readdress(s, person=person, account=account)
    await audit(
        s,
        at=now,
        actor=actor,
        action=LINKED,
        target=person.email,
        platform=account.platform,
        old_id=old,
        new_id=account.id,
    )
    was = f" (was {old})" if old else ""
    taken = f"; {holder.email} is no longer linked to it" if holder is not None else ""
    return f"{who} is now {label} user {account.id}{was}{taken}."


async def _readdress(s: AsyncSession, *, person: Principal, account: ChatAccount) -> None:
    """Proactive messages follow the binding: the old account's chats stop being this
    person's, and a chat the new account already had with the bot becomes theirs."""
    await s.execute(
        update(ConversationRef)
        .where(
            ConversationRef.transport == account.platform,
            ConversationRef.principal_id == person.id,
            ConversationRef.key != account.id,
        )
        .values(principal_id=None)
        .execution_options(synchronize_session=False)
    )
    await s.execute(
        update(ConversationRef)
        .where(ConversationRef.transport == account.platform, ConversationRef.key == account.id)
        .values(principal_id=person.id)
        .execution_options(synchronize_session=False)
    )
