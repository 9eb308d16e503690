"""Finding people and roles from what someone typed."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Connection, Row, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.commands import UserRef
from handlers.errors import UnknownPrincipal, UnknownRole
from handlers.role_names import unknown_role_message
from handlers.settings import RoleSettings
from storage.models import Principal, Role
from vocab.states import Action

# Every command looks its sender up: build that statement once.
_BY_EMAIL = select(Principal).where(func.lower(Principal.email) == bindparam("email"))


async def principal_by_email(session: AsyncSession, email: str) -> Principal | None:
    return await session.scalar(_BY_EMAIL, {"email": email.strip().lower()})


async def require_principal(session: AsyncSession, email: str) -> Principal:
    person = await principal_by_email(session, email)
    if person is None:
        raise _unknown(email)
    return person


_PERSON = select(Principal.id, Principal.email, Principal.display_name).where(
    func.lower(Principal.email) == bindparam("email")
)


def require_person(conn: Connection, email: str) -> Row[int, str, str]:
    """require_principal as a plain row (id, email, display_name), for UnitOfWork.run_read."""
    row = conn.execute(_PERSON, {"email": email.strip().lower()}).first()
    if row is None:
        raise _unknown(email)
    return row


def unknown_person(email: str) -> UnknownPrincipal:
    """What someone not in the directory is told."""
    return _unknown(email)


def _unknown(email: str) -> UnknownPrincipal:
    return UnknownPrincipal(
        f"{email} is not known to pim-bot; an admin must add you to the policy first."
    )


async def resolve_user(session: AsyncSession, ref: UserRef) -> Principal:
    if ref.kind == "email":
        person = await principal_by_email(session, ref.value)
    elif ref.kind == "slack":
        person = await session.scalar(select(Principal).where(Principal.slack_id == ref.value))
    else:
        person = await session.scalar(
            select(Principal).where(
                (Principal.teams_id == ref.value)
                | (func.lower(Principal.display_name) == ref.value.lower())
            )
        )
    if person is None:
        raise UnknownPrincipal(f"No such person: {ref.value}. Use their email address.")
    return person


async def find_role(session: AsyncSession, text: str, *, usable_by: int | None = None) -> Role:
    """The role named by id or display name. usable_by: the id of the person asking for it,
    so a miss suggests among their roles only."""
    wanted = text.strip().strip("\"'").strip()
    role = await session.scalar(
        select(Role).where(
            (func.lower(Role.id) == wanted.lower())
            | (func.lower(Role.display_name) == wanted.lower())
        )
    )
    if role is None:
        raise UnknownRole(await unknown_role_message(session, wanted, usable_by=usable_by))
    return role


def settings_of(role: Role) -> RoleSettings:
    """The role's settings, parsed once per loaded row: a use case asks several times."""
    raw, memo = role.settings, vars(role).get(_SETTINGS_MEMO)
    if memo is not None and memo[0] is raw:  # a new mapping assigned since is parsed anew
        return cast(RoleSettings, memo[1])
    settings = RoleSettings.from_mapping(raw)
    vars(role)[_SETTINGS_MEMO] = (raw, settings)
    return settings


_SETTINGS_MEMO = "_pim_settings_memo"  # not a mapped attribute: the ORM never sees it


async def admins(session: AsyncSession) -> list[Principal]:
    return list(
        await session.scalars(select(Principal).where(Principal.admin).order_by(Principal.id))
    )


async def deciders_of(
    session: AsyncSession, *, action: str, settings: RoleSettings, requester_id: int
) -> list[Principal]:
    """Who may decide a request: a renewal of an assignment goes to the admins (as in
    Entra), everything else to the role's approvers."""
    if action == Action.SELF_RENEW:
        return [p for p in await admins(session) if p.id != requester_id]
    return await approvers_for(session, settings=settings, requester_id=requester_id)


async def approvers_for(
    session: AsyncSession, *, settings: RoleSettings, requester_id: int
) -> list[Principal]:
    """Who may decide: the role's approvers, but never the requester; admins as the fallback."""
    named: list[Principal] = []
    if settings.approvers:
        named = list(
            await session.scalars(
                select(Principal)
                .where(func.lower(Principal.email).in_(settings.approvers))
                .order_by(Principal.id)
            )
        )
    deciders = [p for p in named if p.id != requester_id]
    if deciders:
        return deciders
    return [p for p in await admins(session) if p.id != requester_id]
