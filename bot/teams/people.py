"""Who wrote to the bot on Teams, and where to reach them later."""

from __future__ import annotations

import logging
from typing import Any

from botbuilder.core import TurnContext
from botbuilder.core.teams import TeamsInfo

from handlers.clock import Clock
from handlers.identity import email_for, link_by_email, remember_conversation
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)


def tenant_of(turn_context: TurnContext) -> str | None:
    # Teams sends "tenantId" but botbuilder's schema field is "tenantID", so the typed
    # attribute stays empty; channel data has it reliably.
    data = turn_context.activity.channel_data or {}
    tenant = data.get("tenant") if isinstance(data, dict) else None
    return tenant.get("id") if isinstance(tenant, dict) else None


def _aad_id(turn_context: TurnContext) -> str | None:
    sender = turn_context.activity.from_property
    return getattr(sender, "aad_object_id", None) if sender else None


async def identify(uow: UnitOfWork, clock: Clock, turn_context: TurnContext) -> str | None:
    """The principal's email: by Entra object id, else by the UPN/email Teams knows."""
    aad = _aad_id(turn_context)
    if not aad:
        return None
    email = await email_for(uow, platform="teams", user_id=aad)
    if email is not None:
        return email
    try:
        member = await TeamsInfo.get_member(turn_context, turn_context.activity.from_property.id)
    except Exception as err:  # the roster is a network call at the edge; fall back to nothing
        logger.info("Teams member lookup failed: %s", err)
        return None
    upn = getattr(member, "email", None) or getattr(member, "user_principal_name", None)
    if not upn:
        return None
    email = await link_by_email(uow, clock, platform="teams", user_id=aad, email=upn)
    if email is not None:
        await remember(uow, clock, turn_context)  # now that we know whose chat this is
    return email


def reference_of(turn_context: TurnContext) -> dict[str, Any]:
    """This turn's conversation reference, as stored for proactive messages."""
    ref: dict[str, Any] = TurnContext.get_conversation_reference(turn_context.activity).serialize()
    if tenant := tenant_of(turn_context):
        ref.setdefault("conversation", {})["tenantId"] = tenant
    return ref


async def remember(uow: UnitOfWork, clock: Clock, turn_context: TurnContext) -> None:
    """Save the conversation reference on every turn (and on install)."""
    activity = turn_context.activity
    if activity.conversation is None:
        return
    ref = reference_of(turn_context)
    personal = (activity.conversation.conversation_type or "personal") == "personal"
    aad = _aad_id(turn_context)
    if personal and aad:
        await remember_conversation(uow, clock, platform="teams", key=aad, ref=ref, user_id=aad)
    else:
        await remember_conversation(
            uow, clock, platform="teams", key=activity.conversation.id, ref=ref
        )
