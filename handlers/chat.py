"""From a line of chat text to one use case and its view. Every transport goes through here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, time, timedelta
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from cards import views as v
from cards.views import REVIEW_WORDS, Reply, RequestView, View
from handlers import commands as c
from handlers.activation import ActivationAsk, cancel_request, deactivate, request_activation
from handlers.approval import decide
from handlers.assignment import assign, remove
from handlers.clock import Clock
from handlers.digest.report import DigestOptions
from handlers.digest.send import preview_digest
from handlers.errors import InvalidInput, PimError
from handlers.extend import request_extension
from handlers.grammar import USAGE, CommandError, help_text, parse_command
from handlers.grants.admin import grants_reply
from handlers.group_eligibility import GroupMembership
from handlers.linking import link_account
from handlers.queries import activation_form, audit_trail, my_approvals, my_requests, my_roles
from handlers.renew import extend_assignment, request_renewal
from handlers.reviews.decide import decide_item
from handlers.reviews.progress import my_reviews
from storage.uow import UnitOfWork
from vocab.states import Status

Runner = Callable[[UnitOfWork, Clock, str, Any], Awaitable[View]]
# Command class -> runner. Built per installation by command_table(), never changed after.
Commands = Mapping[type, Runner]


def activation_headline(view: RequestView) -> str:
    """What the requester reads right after asking, from chat text or from a form."""
    if view.status == Status.PENDING_APPROVAL:
        return f"Request {view.id} for {view.role.name} is waiting for approval."
    if view.status == Status.GRANTED:
        return (
            f"{view.role.name} is scheduled; request {view.id} starts at {v.when(view.start_at)}."
        )
    end = v.when(
        (
            datetime.fromisoformat(view.start_at) + timedelta(seconds=view.duration_seconds or 0)
        ).isoformat()
    )
    return f"{view.role.name} is active now. Request {view.id}, until {end}."


def activate_command(timezone: str, groups: GroupMembership | None = None) -> Runner:
    """`activate`, with a later start (`at 14:00`) read in the installation's time zone;
    `groups` (None: no directory) makes members of an eligible Entra group eligible."""

    async def activate(uow: UnitOfWork, clock: Clock, actor: str, cmd: c.Activate) -> View:
        if cmd.role is None:
            return await activation_form(uow, actor=actor, groups=groups)
        start = local_start(cmd.start, now=clock.now(), timezone=timezone) if cmd.start else None
        view = await request_activation(
            uow,
            clock,
            actor=actor,
            groups=groups,
            ask=ActivationAsk(
                role=cmd.role,
                duration=cmd.duration,
                justification=cmd.justification,
                ticket=cmd.ticket,
                duration_text=cmd.duration_text,
                start_at=start,
            ),
        )
        return Reply(text=activation_headline(view), request=view)

    return activate


def local_start(at: c.StartTime, *, now: datetime, timezone: str) -> datetime:
    """The instant of `at HH:MM` (the next one) or `at tomorrow HH:MM`, in `timezone`."""
    local = now.astimezone(ZoneInfo(timezone))
    day = local.date() + timedelta(days=1 if at.tomorrow else 0)
    when_ = datetime.combine(day, time(at.hour, at.minute), tzinfo=ZoneInfo(timezone))
    if not at.tomorrow and when_ <= local:
        when_ += timedelta(days=1)
    return when_.astimezone(UTC)


async def _extend(uow: UnitOfWork, clock: Clock, actor: str, cmd: c.Extend) -> View:
    view = await request_extension(
        uow,
        clock,
        actor=actor,
        role=cmd.role,
        duration=cmd.duration,
        justification=cmd.justification,
        duration_text=cmd.duration_text,
    )
    if view.pending:
        return Reply(
            text=f"Request {view.id} to extend {view.role.name} is waiting for approval.",
            request=view,
        )
    end = v.when(
        (
            datetime.fromisoformat(view.start_at) + timedelta(seconds=view.duration_seconds or 0)
        ).isoformat()
    )
    return Reply(text=f"{view.role.name} is extended until {end}. Request {view.id}.")


async def _renew(uow: UnitOfWork, clock: Clock, actor: str, cmd: c.Renew) -> View:
    view = await request_renewal(
        uow,
        clock,
        actor=actor,
        role=cmd.role,
        duration=cmd.duration,
        justification=cmd.justification,
    )
    return Reply(
        text=f"Request {view.id} to renew {view.role.name} is waiting for an admin's approval.",
        request=view,
    )


async def _extend_assignment(
    uow: UnitOfWork, clock: Clock, actor: str, cmd: c.ExtendAssignment
) -> View:
    return Reply(
        text=await extend_assignment(
            uow,
            clock,
            actor=actor,
            user=cmd.user,
            role=cmd.role,
            kind=cmd.kind,
            duration=cmd.duration,
            until=cmd.until,
            justification=cmd.justification,
        )
    )


async def _cancel(uow: UnitOfWork, clock: Clock, actor: str, cmd: c.Cancel) -> View:
    view = await cancel_request(uow, clock, actor=actor, request_id=cmd.request_id)
    return Reply(text=f"Request {view.id} for {view.role.name} is canceled.", request=view)


async def _approve(uow: UnitOfWork, clock: Clock, actor: str, cmd: c.Approve) -> View:
    view = await decide(
        uow,
        clock,
        actor=actor,
        request_id=cmd.request_id,
        approve=True,
        justification=cmd.justification,
    )
    return Reply(
        text=f"You approved {view.id}: {view.requester.name} gets {view.role.name}.", request=view
    )


async def _deny(uow: UnitOfWork, clock: Clock, actor: str, cmd: c.Deny) -> View:
    view = await decide(
        uow,
        clock,
        actor=actor,
        request_id=cmd.request_id,
        approve=False,
        justification=cmd.justification,
    )
    return Reply(
        text=f"You denied {view.id} ({view.requester.name}, {view.role.name}).", request=view
    )


async def _deactivate(uow: UnitOfWork, clock: Clock, actor: str, cmd: c.Deactivate) -> View:
    return Reply(text=await deactivate(uow, clock, actor=actor, role=cmd.role))


async def _assign(uow: UnitOfWork, clock: Clock, actor: str, cmd: c.Assign) -> View:
    return Reply(
        text=await assign(
            uow,
            clock,
            actor=actor,
            user=cmd.user,
            role=cmd.role,
            kind=cmd.kind,
            duration=cmd.duration,
            until=cmd.until,
            justification=cmd.justification,
        )
    )


async def _remove(uow: UnitOfWork, clock: Clock, actor: str, cmd: c.Remove) -> View:
    return Reply(
        text=await remove(uow, clock, actor=actor, user=cmd.user, role=cmd.role, kind=cmd.kind)
    )


async def _link(uow: UnitOfWork, clock: Clock, actor: str, cmd: c.Link) -> View:
    return Reply(
        text=await link_account(uow, clock, actor=actor, user=cmd.user, account=cmd.account)
    )


async def _review(uow: UnitOfWork, clock: Clock, actor: str, cmd: c.Review) -> View:
    card = await decide_item(
        uow, clock, actor=actor, item_id=cmd.item_id, decision=cmd.decision, reason=cmd.reason
    )
    return Reply(
        text=f"Recorded: item {cmd.item_id} {REVIEW_WORDS[cmd.decision].lower()}. "
        f"{card.name}: {card.progress_line()}."
    )


async def _audit(uow: UnitOfWork, clock: Clock, actor: str, cmd: c.Audit) -> View:
    return await audit_trail(
        uow, clock, actor=actor, subject=cmd.subject, since=cmd.since, since_text=cmd.since_text
    )


def digest_command(options: DigestOptions) -> Runner:
    """`digest`: an admin's private preview of the digest up to now, in the installation's
    time zone (PIM_TIMEZONE)."""

    async def preview(uow: UnitOfWork, clock: Clock, actor: str, cmd: c.Digest) -> View:
        return await preview_digest(uow, clock, actor=actor, options=options)

    return preview


def command_table(*, digest: DigestOptions, groups: GroupMembership | None = None) -> Commands:
    """Every chat command's runner. The composition root builds one and hands it to each
    transport; to add a command, give it a parser in handlers.grammar and a runner here."""
    return MappingProxyType(
        {
            c.Help: lambda uow, clock, actor, cmd: _reply(help_text(cmd.topic)),
            c.Roles: lambda uow, clock, actor, cmd: my_roles(uow, actor=actor, groups=groups),
            c.Requests: lambda uow, clock, actor, cmd: my_requests(uow, actor=actor),
            c.Approvals: lambda uow, clock, actor, cmd: my_approvals(uow, actor=actor),
            c.Activate: activate_command(digest.timezone, groups),
            c.Cancel: _cancel,
            c.Approve: _approve,
            c.Deny: _deny,
            c.Deactivate: _deactivate,
            c.Assign: _assign,
            c.Remove: _remove,
            c.Audit: _audit,
            c.Digest: digest_command(digest),
            c.Link: _link,
            c.Extend: _extend,
            c.Renew: _renew,
            c.ExtendAssignment: _extend_assignment,
            c.Reviews: lambda uow, clock, actor, cmd: my_reviews(uow, actor=actor),
            c.Review: _review,
            c.Grants: lambda uow, clock, actor, cmd: grants_reply(
                uow, actor=actor, failed_only=cmd.failed
            ),
        }
    )


async def _reply(text: str) -> View:
    return Reply(text=text)


async def run_text(
    uow: UnitOfWork, clock: Clock, *, commands: Commands, actor: str, text: str
) -> View:
    """Parse and run one command. Refusals become a one-line Reply; nothing else is caught,
    so a real bug still surfaces in the transport's central error handler."""
    try:
        cmd = parse_command(text)
    except CommandError as err:
        return Reply(text=err.reason, ok=False, usage=err.usage)
    return await run_command(uow, clock, commands=commands, actor=actor, cmd=cmd)


async def run_command(
    uow: UnitOfWork, clock: Clock, *, commands: Commands, actor: str, cmd: c.Command
) -> View:
    try:
        return await commands[type(cmd)](uow, clock, actor, cmd)
    except InvalidInput as err:
        return Reply(text=err.message, ok=False, usage=_usage_for(cmd))
    except PimError as err:
        return Reply(text=err.message, ok=False)


def _usage_for(cmd: object) -> str | None:
    return USAGE.get(type(cmd).__name__.lower())
