"""What an activation request must satisfy on its own, before the database is asked anything:
the role's duration range, a start that is not in the past, the justification and ticket."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from handlers.commands import Ticket
from handlers.durations import format_duration
from handlers.errors import DurationOutOfRange, InvalidInput, JustificationRequired, TicketRequired
from handlers.settings import RoleSettings
from handlers.user_text import user_text
from vocab.limits import MAX_JUSTIFICATION

# A start a little in the past is a slow form or a skewed clock, not a request for the past.
START_SLACK = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class ActivationAsk:
    role: str
    duration: timedelta | None = None
    justification: str | None = None
    ticket: Ticket | None = None
    start_at: datetime | None = None
    duration_text: str | None = None  # as typed, so a refusal echoes "99h", not "4d3h"


@dataclass(frozen=True, slots=True)
class CheckedAsk:
    """An ask that passed every rule, with the role's defaults filled in."""

    duration: timedelta
    start: datetime
    justification: str | None
    ticket: Ticket | None

    @property
    def end(self) -> datetime:
        return self.start + self.duration


def check_ask(
    ask: ActivationAsk, *, role_id: str, role_name: str, settings: RoleSettings, now: datetime
) -> CheckedAsk:
    """Raise the typed error a person should see, or return the ask made complete."""
    duration = ask.duration if ask.duration is not None else settings.effective_default
    if not settings.min_duration <= duration <= settings.max_duration:
        raise DurationOutOfRange(
            f"{role_name} can be activated for {format_duration(settings.min_duration)}"
            f" to {format_duration(settings.max_duration)}; you asked for "
            f"{ask.duration_text or format_duration(duration)}."
        )
    start = ask.start_at or now
    if start < now - START_SLACK:
        raise InvalidInput("The start time is in the past.")
    justification = user_text(ask.justification, what="justification")
    if justification and len(justification) > MAX_JUSTIFICATION:
        raise InvalidInput(f"The justification is too long (at most {MAX_JUSTIFICATION}).")
    if settings.require_justification and not justification:
        raise JustificationRequired(
            f"{role_name} needs a justification: "
            f"activate {role_id} {format_duration(duration)} <why you need it>"
        )
    if settings.require_ticket and ask.ticket is None:
        raise TicketRequired(f"{role_name} needs a ticket: activate {role_id} ticket:INC-123 <why>")
    return CheckedAsk(
        duration=duration, start=start, justification=justification, ticket=ask.ticket
    )
