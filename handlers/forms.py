"""The activation form (Slack modal, Teams card): field values in, an ask or field errors out.

Field names are the same on every platform ("role", "duration", "justification", "ticket"), so
an error lands under the field it is about."""

from __future__ import annotations

from dataclasses import dataclass, field

from cards.views import RequestView
from handlers.activation import ActivationAsk, request_activation
from handlers.clock import Clock
from handlers.commands import Ticket
from handlers.durations import DurationError, parse_duration
from handlers.errors import DurationOutOfRange, JustificationRequired, PimError, TicketRequired
from handlers.group_eligibility import GroupMembership
from handlers.user_text import control_character, refusal
from storage.uow import UnitOfWork

ROLE, DURATION, JUSTIFICATION, TICKET = "role", "duration", "justification", "ticket"


def read_activation_form(
    *, role: str | None, duration: str | None, justification: str | None, ticket: str | None
) -> tuple[dict[str, str], ActivationAsk | None]:
    typed = {ROLE: role, DURATION: duration, JUSTIFICATION: justification, TICKET: ticket}
    refused = {
        field: refusal(f"The {field}", code)
        for field, value in typed.items()
        if value and (code := control_character(value)) is not None
    }
    if refused:
        return refused, None
    if not (role or "").strip():
        return {ROLE: "Choose a role."}, None
    parsed = None
    if (duration or "").strip():
        try:
            parsed = parse_duration(duration or "")
        except DurationError as err:
            return {DURATION: str(err)}, None
    ref = None
    if (ticket or "").strip():
        system, _, number = (ticket or "").strip().rpartition(":")
        if not number:
            return {TICKET: "Give the ticket number, e.g. INC-123 or jira:OPS-12."}, None
        ref = Ticket(system=system.lower() or None, number=number)
    return {}, ActivationAsk(
        role=(role or "").strip(),
        duration=parsed,
        ticket=ref,
        justification=(justification or "").strip() or None,
        duration_text=(duration or "").strip() or None,
    )


def field_of(err: PimError) -> str:
    """Which form field a refusal is about."""
    if isinstance(err, DurationOutOfRange):
        return DURATION
    if isinstance(err, JustificationRequired):
        return JUSTIFICATION
    if isinstance(err, TicketRequired):
        return TICKET
    return ROLE


@dataclass(frozen=True)
class FormOutcome:
    """A submitted activation form: the request it made, or the errors to show by field."""

    request: RequestView | None = None
    errors: dict[str, str] = field(default_factory=dict)


async def submit_activation_form(
    uow: UnitOfWork,
    clock: Clock,
    *,
    actor: str,
    role: str | None,
    duration: str | None,
    justification: str | None,
    ticket: str | None,
    groups: GroupMembership | None = None,
) -> FormOutcome:
    """Read the form and ask for the activation; a refusal lands under the field it is about."""
    errors, ask = read_activation_form(
        role=role, duration=duration, justification=justification, ticket=ticket
    )
    if ask is None:
        return FormOutcome(errors=errors)
    try:
        return FormOutcome(
            request=await request_activation(uow, clock, actor=actor, ask=ask, groups=groups)
        )
    except PimError as err:
        return FormOutcome(errors={field_of(err): err.message})  # field names = input ids
