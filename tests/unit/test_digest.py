"""The weekly digest against a scripted fortnight whose true figures are known, on SQLite and
PostgreSQL; period boundaries; a week across the end of summer time in Europe/Berlin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cards.views import AlertLine, DigestView, Figure, Ranked
from handlers.activation import cancel_request, deactivate
from handlers.clock import FixedClock
from handlers.digest.report import DigestOptions, compute_digest, periods, short_duration
from storage.db import make_engine
from storage.uow import UnitOfWork
from tests.unit.conftest import Engine, seed
from tests.unit.helpers import ALICE, BOB, CAROL, DAVE, Story

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


H = timedelta(hours=1)
M = timedelta(minutes=1)
END = utc(2026, 12, 7, 9)  # Monday; this week is [Nov 30 09:00, Dec 7 09:00) UTC


async def fortnight(eng: Engine) -> None:
    """The seed (five permanent eligibilities) lands on Fri Nov 27 09:00, last week."""
    story = Story(eng)
    # -- last week --------------------------------------------------------------------------
    await story.activate(utc(2026, 11, 27, 10), BOB, "helpdesk-admin", 2 * H)
    ga = await story.activate(utc(2026, 11, 27, 11), BOB, "global-admin", H)
    await story.decide(utc(2026, 11, 27, 11, 30), CAROL, ga, approve=True)  # 30m
    await story.activate(utc(2026, 11, 28, 10), BOB, "quick", 30 * M)  # Saturday
    billing = await story.activate(utc(2026, 11, 28, 12), DAVE, "billing-admin", H, "INC-1")
    await story.decide(utc(2026, 11, 28, 14), ALICE, billing, approve=False)  # 2h
    await story.assign(utc(2026, 11, 29, 9), CAROL, "helpdesk-admin", "active")  # permanent
    # -- this week --------------------------------------------------------------------------
    await story.activate(utc(2026, 11, 30, 9), BOB, "quick", 10 * M)  # exactly at the start
    await story.activate(utc(2026, 11, 30, 20), BOB, "helpdesk-admin", 4 * H)  # evening
    await story.activate(utc(2026, 12, 1, 7, 59, 59), BOB, "quick", H)  # a second early
    await story.activate(utc(2026, 12, 1, 8), BOB, "helpdesk-admin", H)  # on the hour
    await story.at(utc(2026, 12, 1, 8, 29, 59))
    await deactivate(eng.uow, eng.clock, actor=BOB, role="quick")  # held 30m
    await story.assign(
        utc(2026, 12, 1, 12), DAVE, "helpdesk-admin", "eligible", until=utc(2026, 12, 15, 12)
    )
    ga = await story.activate(utc(2026, 12, 2, 9), BOB, "global-admin", 2 * H)
    carol = await story.activate(utc(2026, 12, 2, 10), CAROL, "global-admin", H)
    await story.decide(utc(2026, 12, 2, 10, 30), ALICE, carol, approve=False)  # 30m
    await story.decide(utc(2026, 12, 2, 12), CAROL, ga, approve=True)  # 3h
    await story.assign(
        utc(2026, 12, 2, 15), BOB, "billing-admin", "active", until=utc(2026, 12, 12, 15)
    )
    await story.activate(utc(2026, 12, 3, 9), DAVE, "billing-admin", H, "INC-2")  # times out
    mine = await story.activate(utc(2026, 12, 3, 10), BOB, "global-admin", H)
    await story.at(utc(2026, 12, 3, 10, 15))
    await cancel_request(eng.uow, eng.clock, actor=BOB, request_id=mine)
    await story.assign(utc(2026, 12, 3, 15), DAVE, "quick", "eligible")  # permanent
    await story.assign(utc(2026, 12, 3, 16), CAROL, "quick", "eligible", until=utc(2027, 1, 31))
    await story.activate(utc(2026, 12, 4, 13), DAVE, "helpdesk-admin", 90 * M)
    await story.activate(utc(2026, 12, 5, 10), BOB, "quick", H)  # Saturday
    await story.activate(utc(2026, 12, 6, 23), BOB, "quick", 20 * M)  # Sunday night
    # -- next week: exactly at the end, so in no figure of this digest ----------------------
    await story.activate(END, BOB, "quick", 5 * M)
    await story.at(END + H)


async def test_every_figure_of_a_scripted_fortnight(eng: Engine) -> None:
    await fortnight(eng)
    digest = await compute_digest(eng.uow, end=END)

    assert digest.period_start == "2026-11-30T09:00:00+00:00"
    assert digest.period_end == "2026-12-07T09:00:00+00:00"
    assert digest.title == "PIM digest · 30 Nov – 7 Dec 2026"
    assert digest.tiles == (
        Figure("Activations", 8, 3),
        Figure("Assignments made permanent", 1, 6),  # 5 seeded eligibilities + Carol's
        Figure("Eligible assignments made", 3, 5),
        Figure("Active assignments outside PIM", 1, 1),
    )
    assert digest.approvals == (
        Figure("Requests needing approval", 4, 2),
        Figure("Approved", 1, 1),
        Figure("Denied", 1, 1),
        Figure("Timed out", 1, 0),
        Figure("Canceled", 1, 0),
        # this week 30m and 3h; last week 30m and 2h
        Figure("Median time to decision", 6300.0, 4500.0, unit="s"),
        Figure("90th percentile time to decision", 9900.0, 6660.0, unit="s"),
    )
    assert digest.slowest_approvers == (Ranked("Carol Chen", "3h"), Ranked("Alice Admin", "30m"))
    # Mon 20:00, Tue 07:59:59, Sat, Sun out of hours; last week's Saturday one
    assert digest.after_hours == Figure("Activations outside working hours", 4, 1)
    assert digest.daily_activations == (4, 0, 1, 0, 1, 1, 1)
    assert digest.longest_activations == (
        Ranked("Bob Builder · Helpdesk Administrator", "4h"),
        Ranked("Bob Builder · Global Administrator", "2h"),
        Ranked("Dave Duty · Helpdesk Administrator", "1h30m"),
        Ranked("Bob Builder · Helpdesk Administrator", "1h"),
        Ranked("Bob Builder · Quick Role", "1h"),
    )
    assert digest.frequent_activators == (Ranked("Bob Builder", "7"), Ranked("Dave Duty", "1"))
    assert digest.top_roles == (
        Ranked("Helpdesk Administrator", "3"),
        Ranked("Quick Role", "3"),
        Ranked("Billing Administrator", "2"),
        Ranked("Global Administrator", "2"),
    )
    assert digest.ending_soon == (
        Ranked("Bob Builder · Billing Administrator (active)", "2026-12-12"),
        Ranked("Dave Duty · Helpdesk Administrator (eligible)", "2026-12-15"),
    )
    assert digest.alerts == (
        AlertLine(
            code="no_approval_or_justification:quick",
            severity="medium",
            text="Quick Role can be activated with neither approval nor a justification, so "
            "nobody checks or explains its use. Require one of them.",
        ),
    )
    assert DigestView.from_dict(_roundtrip(digest)) == digest


def _roundtrip(view: DigestView) -> dict:
    import json
    from dataclasses import asdict

    return json.loads(json.dumps(asdict(view)))


async def test_top_and_ending_window_options(eng: Engine) -> None:
    await fortnight(eng)
    digest = await compute_digest(
        eng.uow, end=END, options=DigestOptions(top=2, ending_within=timedelta(days=6))
    )
    assert digest.top_roles == (Ranked("Helpdesk Administrator", "3"), Ranked("Quick Role", "3"))
    assert digest.longest_activations == (
        Ranked("Bob Builder · Helpdesk Administrator", "4h"),
        Ranked("Bob Builder · Global Administrator", "2h"),
    )
    assert digest.ending_soon == (
        Ranked("Bob Builder · Billing Administrator (active)", "2026-12-12"),
    )


async def test_an_explicit_period_and_its_edges(eng: Engine) -> None:
    await fortnight(eng)
    # One day, Mon 09:00 to Tue 09:00: the activation at exactly 09:00 counts, the one at
    # 08:00 the next day too; the previous day (Sun 09:00 to Mon 09:00) had none.
    day = await compute_digest(eng.uow, start=utc(2026, 11, 30, 9), end=utc(2026, 12, 1, 9))
    assert day.tiles[0] == Figure("Activations", 4, 0)
    assert day.daily_activations == (4,)
    # Last week, ending exactly at this week's first activation, leaves that one out.
    before = await compute_digest(eng.uow, start=utc(2026, 11, 23, 9), end=utc(2026, 11, 30, 9))
    assert before.tiles[0] == Figure("Activations", 3, 0)
    # Outcomes are those known at the end of the period: Bob's request of Wed 09:00 is
    # approved only at 12:00, Carol's of 10:00 denied at 10:30.
    morning = await compute_digest(eng.uow, start=utc(2026, 12, 2, 9), end=utc(2026, 12, 2, 11))
    assert morning.approvals == (
        Figure("Requests needing approval", 2, 0),
        Figure("Approved", 0, 0),
        Figure("Denied", 1, 0),
        Figure("Timed out", 0, 0),
        Figure("Canceled", 0, 0),
        Figure("Median time to decision", 1800.0, None, unit="s"),
        Figure("90th percentile time to decision", 1800.0, None, unit="s"),
    )
    assert morning.slowest_approvers == (Ranked("Alice Admin", "30m"),)
    # A digest at the end of the fortnight counts the activation at exactly END.
    after = await compute_digest(eng.uow, end=END + 7 * 24 * H)
    assert after.tiles[0] == Figure("Activations", 1, 8)
    assert after.longest_activations == (Ranked("Bob Builder · Quick Role", "5m"),)


async def test_an_empty_database_gives_zeros_not_errors(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        digest = await compute_digest(UnitOfWork(engine), end=END)
    finally:
        await engine.dispose()
    assert [f.value for f in digest.tiles] == [0, 0, 0, 0]
    assert digest.approvals[-2:] == (
        Figure("Median time to decision", None, None, unit="s"),
        Figure("90th percentile time to decision", None, None, unit="s"),
    )
    assert digest.daily_activations == (0,) * 7
    assert digest.top_roles == digest.slowest_approvers == digest.ending_soon == ()


# -- Europe/Berlin: summer time ends on Sunday 2026-10-25 at 03:00 CEST (01:00 UTC) ---------


@pytest.fixture
async def october(db_url: str) -> AsyncIterator[Engine]:
    engine = make_engine(db_url)
    eng = Engine(uow=UnitOfWork(engine), clock=FixedClock(utc(2026, 10, 1, 9)))
    await seed(eng.uow, eng.clock)
    try:
        yield eng
    finally:
        await engine.dispose()


BERLIN_OPTIONS = DigestOptions(timezone="Europe/Berlin")
WEEK_OF_CHANGE = datetime(2026, 10, 26, 9, tzinfo=BERLIN)  # 08:00 UTC
WEEK_AFTER = datetime(2026, 11, 2, 9, tzinfo=BERLIN)


def test_the_week_of_the_change_has_seven_days_one_of_25_hours() -> None:
    prev, cur = periods(end=WEEK_OF_CHANGE, start=None, tz=BERLIN)
    assert cur.start == utc(2026, 10, 19, 7)  # 09:00 CEST
    assert cur.end == utc(2026, 10, 26, 8)  # 09:00 CET
    lengths = [(b - a) / H for a, b in zip(cur.bounds, cur.bounds[1:], strict=False)]
    assert lengths == [24, 24, 24, 24, 24, 25, 24]
    assert (prev.start, prev.end) == (utc(2026, 10, 12, 7), cur.start)
    prev, cur = periods(end=WEEK_AFTER, start=None, tz=BERLIN)
    assert (cur.start, prev.start) == (utc(2026, 10, 26, 8), utc(2026, 10, 19, 7))
    assert [(b - a) / H for a, b in zip(cur.bounds, cur.bounds[1:], strict=False)] == [24] * 7


def test_the_week_of_the_spring_change_has_a_23_hour_day() -> None:
    _, cur = periods(end=datetime(2026, 3, 30, 9, tzinfo=BERLIN), start=None, tz=BERLIN)
    lengths = [(b - a) / H for a, b in zip(cur.bounds, cur.bounds[1:], strict=False)]
    assert lengths == [24, 24, 24, 24, 24, 23, 24]


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        periods(end=datetime(2026, 3, 30, 9), start=None, tz=BERLIN)


async def test_days_and_working_hours_follow_berlin_across_the_change(october: Engine) -> None:
    story = Story(october)
    for when in [
        utc(2026, 10, 19, 7),  # Mon 09:00 CEST, the first instant: day 0, working
        utc(2026, 10, 23, 6, 30),  # Fri 08:30 CEST: working (06:30 in UTC), day 3
        utc(2026, 10, 23, 16, 30),  # Fri 18:30 CEST: after hours (16:30 in UTC), day 4
        utc(2026, 10, 25, 7, 30),  # Sun 08:30 CET: still the 25-hour day 5 (from Sat 09:00)
        utc(2026, 10, 26, 7, 30),  # Mon 08:30 CET: working (07:30 in UTC), day 6
        utc(2026, 10, 26, 8),  # Mon 09:00 CET: the end, so the next week's (day 0)
        utc(2026, 10, 27, 17, 30),  # Tue 18:30 CET: after hours
    ]:
        await story.activate(when, BOB, "quick", 10 * M)
    await story.at(utc(2026, 11, 3))

    change = await compute_digest(october.uow, end=WEEK_OF_CHANGE, options=BERLIN_OPTIONS)
    assert change.daily_activations == (1, 0, 0, 1, 1, 1, 1)
    assert change.after_hours == Figure("Activations outside working hours", 2, 0)
    assert change.tiles[0] == Figure("Activations", 5, 0)
    assert change.title == "PIM digest · 19 Oct – 26 Oct 2026"

    after = await compute_digest(october.uow, end=WEEK_AFTER, options=BERLIN_OPTIONS)
    assert after.daily_activations == (1, 1, 0, 0, 0, 0, 0)
    assert after.after_hours == Figure("Activations outside working hours", 1, 2)
    assert after.tiles[0] == Figure("Activations", 2, 5)
    # The same 169 hours read in UTC: days from 07:00 (eight of them, the last one hour
    # long), and 07:00, 06:30, Sunday and 07:30 out of hours: proof the zone is applied.
    plain = await compute_digest(october.uow, end=utc(2026, 10, 26, 8), start=utc(2026, 10, 19, 7))
    assert plain.after_hours == Figure("Activations outside working hours", 4, 0)
    assert plain.daily_activations == (1, 0, 0, 1, 1, 0, 1, 1)


async def test_working_hours_and_days_are_options(october: Engine) -> None:
    story = Story(october)
    await story.activate(utc(2026, 10, 20, 5), BOB, "quick", 10 * M)  # Tue 07:00 CEST
    await story.activate(utc(2026, 10, 24, 10), BOB, "quick", 10 * M)  # Sat 12:00 CEST
    await story.at(utc(2026, 10, 27))
    options = DigestOptions(timezone="Europe/Berlin", working_hours=(7, 24), working_days=(1, 5))
    digest = await compute_digest(october.uow, end=WEEK_OF_CHANGE, options=options)
    assert digest.after_hours == Figure("Activations outside working hours", 0, 0)
    digest = await compute_digest(october.uow, end=WEEK_OF_CHANGE, options=BERLIN_OPTIONS)
    assert digest.after_hours == Figure("Activations outside working hours", 2, 0)


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="working hours"):
        DigestOptions(working_hours=(18, 8))
    with pytest.raises(ValueError, match="working days"):
        DigestOptions(working_days=(7,))
    with pytest.raises(Exception, match="Mars"):
        DigestOptions(timezone="Mars/Olympus")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (45, "45s"),
        (750, "12m30s"),
        (3600, "1h"),
        (12000.4, "3h20m"),
        (12029, "3h20m"),
        (5400, "1h30m"),
        (183600, "2d3h"),
        (86400, "1d"),
    ],
)
def test_short_durations(seconds: float, text: str) -> None:
    assert short_duration(seconds) == text


async def test_running_activations_rank_by_their_length_and_end_within_the_hour(
    eng: Engine,
) -> None:
    """An activation still running when the digest is made ranks by how long it was granted
    for (not by the time elapsed so far), says it is still active, and one ending within the
    hour after the digest is listed under "Ending soon" with its time."""
    story = Story(eng)
    await story.assign(END - 4 * H, DAVE, "helpdesk-admin", "eligible")
    await story.activate(END - 3 * H, BOB, "helpdesk-admin", H)  # ended before the digest
    await story.activate(END - 40 * M, BOB, "quick", H)  # ends 09:20, in 20m
    await story.activate(END - 30 * M, DAVE, "helpdesk-admin", 4 * H)  # 30m elapsed of 4h
    await story.at(END)
    digest = await compute_digest(eng.uow, end=END)
    assert digest.longest_activations == (
        Ranked("Dave Duty · Helpdesk Administrator (still active)", "4h"),
        Ranked("Bob Builder · Helpdesk Administrator", "1h"),
        Ranked("Bob Builder · Quick Role (still active)", "1h"),
    )
    assert digest.ending_soon == (Ranked("Bob Builder · Quick Role (active)", "09:20"),)
