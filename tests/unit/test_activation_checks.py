"""The rules an activation request must meet on its own: no database, no clock but `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from handlers.activation_rules import MAX_JUSTIFICATION, ActivationAsk, check_ask
from handlers.commands import Ticket
from handlers.errors import DurationOutOfRange, InvalidInput, JustificationRequired, TicketRequired
from handlers.settings import RoleSettings

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
PLAIN = RoleSettings.from_mapping({"max_duration": "4h", "default_duration": "2h"})


def check(settings: RoleSettings = PLAIN, **ask: object):  # type: ignore[no-untyped-def]
    return check_ask(
        ActivationAsk(role="r", **ask),
        role_id="r",
        role_name="Role R",  # type: ignore[arg-type]
        settings=settings,
        now=NOW,
    )


def test_a_complete_ask_gets_the_defaults_filled_in():
    got = check(justification="  fix the printer  ")
    assert (got.duration, got.start, got.justification) == (
        timedelta(hours=2),
        NOW,
        "fix the printer",
    )
    assert got.end == NOW + timedelta(hours=2)


@pytest.mark.parametrize("duration", [timedelta(minutes=4), timedelta(hours=5)])
def test_duration_outside_the_roles_range_is_refused(duration):
    with pytest.raises(DurationOutOfRange, match="Role R can be activated for 5m to 4h"):
        check(duration=duration, justification="x")


def test_a_start_in_the_past_is_refused_but_a_slow_form_is_not():
    with pytest.raises(InvalidInput, match="in the past"):
        check(justification="x", start_at=NOW - timedelta(minutes=2))
    assert check(justification="x", start_at=NOW - timedelta(seconds=30)).start == NOW - timedelta(
        seconds=30
    )


def test_justification_required_too_long_or_blank():
    with pytest.raises(JustificationRequired, match="activate r 2h <why you need it>"):
        check(justification="   ")
    with pytest.raises(InvalidInput, match=f"at most {MAX_JUSTIFICATION}"):
        check(justification="x" * (MAX_JUSTIFICATION + 1))
    relaxed = RoleSettings.from_mapping({"require_justification": False})
    assert check(relaxed).justification is None


def test_ticket_required_when_the_role_says_so():
    strict = RoleSettings.from_mapping({"require_ticket": True})
    with pytest.raises(TicketRequired, match="ticket:INC-123"):
        check(strict, justification="x")
    assert check(strict, justification="x", ticket=Ticket("jira", "INC-9")).ticket == Ticket(
        "jira", "INC-9"
    )
