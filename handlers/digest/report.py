"""The weekly PIM digest: what happened over a period, beside the period before it.

Days and working hours are local to `DigestOptions.timezone` (PIM_TIMEZONE). A period is cut
into local days of wall-clock length, so a week across a DST change still has seven days, one
of them 23 or 25 hours long.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cards.views import DigestView, Figure, Ranked
from handlers.digest import queries as q
from handlers.digest.alerts import AlertThresholds, compute_alerts
from handlers.reviews.progress import open_reviews
from storage.audit_checkpoint import current_checkpoint
from storage.uow import UnitOfWork
from vocab.states import ScheduleKind

DEFAULT_PERIOD = timedelta(days=7)


@dataclass(frozen=True)
class DigestOptions:
    timezone: str = "UTC"  # PIM_TIMEZONE: days and working hours are local to it
    working_hours: tuple[int, int] = (8, 18)  # local [start, end) hours
    working_days: tuple[int, ...] = (0, 1, 2, 3, 4)  # Monday=0
    ending_within: timedelta = timedelta(days=14)
    top: int = 5
    alert_thresholds: AlertThresholds = field(default_factory=AlertThresholds)

    def __post_init__(self) -> None:
        ZoneInfo(self.timezone)  # ZoneInfoNotFoundError names a bad PIM_TIMEZONE early
        first, last = self.working_hours
        if not 0 <= first < last <= 24:
            raise ValueError(f"working hours must be 0 <= start < end <= 24, not {first}-{last}")
        if not set(self.working_days) <= set(range(7)):
            raise ValueError("working days are 0 (Monday) to 6 (Sunday)")


@dataclass(frozen=True)
class Period:
    """[start, end) in UTC, cut into local days (`bounds`: start, each next day, end)."""

    start: datetime
    end: datetime
    bounds: tuple[datetime, ...]

    @property
    def span(self) -> q.Span:
        return self.start, self.end


def wall_shift(at: datetime, tz: ZoneInfo, delta: timedelta) -> datetime:
    """`at` moved by `delta` of local wall-clock time (09:00 stays 09:00 across DST)."""
    local = at.astimezone(tz).replace(tzinfo=None) + delta
    return local.replace(tzinfo=tz).astimezone(UTC)


def local_instant(day: date, hour: int, tz: ZoneInfo) -> datetime:
    extra, hour = divmod(hour, 24)
    return datetime.combine(day + timedelta(days=extra), time(hour), tzinfo=tz).astimezone(UTC)


def make_period(start: datetime, end: datetime, tz: ZoneInfo) -> Period:
    bounds = [start]
    day = 1
    while (nxt := wall_shift(start, tz, timedelta(days=day))) < end:
        if nxt > bounds[-1]:
            bounds.append(nxt)
        day += 1
    return Period(start=start, end=end, bounds=(*bounds, end))


def periods(*, end: datetime, start: datetime | None, tz: ZoneInfo) -> tuple[Period, Period]:
    """This period and the one before it, of the same local (wall-clock) length."""
    if end.tzinfo is None or (start is not None and start.tzinfo is None):
        raise ValueError("the digest period needs aware datetimes")
    end = end.astimezone(UTC)
    start = wall_shift(end, tz, -DEFAULT_PERIOD) if start is None else start.astimezone(UTC)
    if start >= end:
        raise ValueError("the digest period must start before it ends")
    wall = end.astimezone(tz).replace(tzinfo=None) - start.astimezone(tz).replace(tzinfo=None)
    prev_start = wall_shift(start, tz, -wall)
    if prev_start >= start:  # a sub-hour period across a DST change
        prev_start = start - (end - start)
    return make_period(prev_start, start, tz), make_period(start, end, tz)


def working_spans(span: q.Span, tz: ZoneInfo, options: DigestOptions) -> list[q.Span]:
    """The local working hours of every working day that meets the span, as UTC spans."""
    first, last = options.working_hours
    day, final = span[0].astimezone(tz).date(), span[1].astimezone(tz).date()
    spans = []
    while day <= final:
        if day.weekday() in options.working_days:
            spans.append((local_instant(day, first, tz), local_instant(day, last, tz)))
        day += timedelta(days=1)
    return spans


def _ending(
    who: str, role: str, kind: str, until: datetime, *, now: datetime, tz: ZoneInfo
) -> Ranked:
    """One "Ending soon" line: its date, or its local time when that is within a day."""
    word = "eligible" if kind == ScheduleKind.ELIGIBLE else "active"
    local = until.astimezone(tz)
    shown = local.strftime("%H:%M") if until - now < timedelta(days=1) else local.date().isoformat()
    return Ranked(f"{who} · {role} ({word})", shown)


def short_duration(seconds: float) -> str:
    """3h20m, 12m30s, 45s, 2d3h: two units at most, for a summary read in ten seconds."""
    secs = round(seconds)
    if secs >= 3600:
        secs = round(seconds / 60) * 60
    days, rest = divmod(secs, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    units = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    while len(units) > 1 and units[0][0] == 0:
        units.pop(0)
    return "".join(f"{n}{u}" for n, u in units[:2] if n) or "0s"


def _title(period: Period, tz: ZoneInfo) -> str:
    first = period.start.astimezone(tz)
    last = period.end.astimezone(tz)
    year = "" if first.year == last.year else f" {first.year}"
    return f"PIM digest · {first.day} {first:%b}{year} – {last.day} {last:%b %Y}"


async def compute_digest(
    uow: UnitOfWork,
    *,
    end: datetime,
    start: datetime | None = None,
    options: DigestOptions = DigestOptions(),
) -> DigestView:
    """The report over [start, end) (default: the 7 days before end), beside the previous
    period of the same length."""
    tz = ZoneInfo(options.timezone)
    prev, cur = periods(end=end, start=start, tz=tz)
    top = options.top
    async with uow.transaction() as s:
        tiles = await q.tile_counts(s, cur=cur.span, prev=prev.span)
        buckets = await q.activation_buckets(
            s,
            bounds=(*prev.bounds[:-1], *cur.bounds),
            working=working_spans((prev.start, cur.end), tz, options),
        )
        approvals = await q.approval_counts(s, cur=cur.span, prev=prev.span)
        pcts = [await q.decision_percentiles(s, span=p.span, ps=(0.5, 0.9)) for p in (cur, prev)]
        slow = await q.slowest_approvers(s, span=cur.span, top=top)
        longest = await q.longest_activations(s, span=cur.span, top=top)
        frequent = await q.frequent_activators(s, span=cur.span, top=top)
        roles = await q.top_roles(s, at=cur.end, top=top)
        ending = await q.ending_soon(
            s,
            at=cur.end,
            until=cur.end + options.ending_within,
            top=top,
            activations_until=cur.end + timedelta(hours=1),
        )
        alerts = await compute_alerts(s, now=cur.end, thresholds=options.alert_thresholds)
        checkpoint = await current_checkpoint(s)
        reviews = await open_reviews(s)

    prev_days = len(prev.bounds) - 1
    daily = [0] * (len(cur.bounds) - 1)
    after = [0, 0]  # this period, previous period
    for index, in_hours, n in buckets:
        mine = index >= prev_days
        if mine:
            daily[index - prev_days] += n
        if not in_hours:
            after[0 if mine else 1] += n

    tile_labels = (
        "Activations",
        "Assignments made permanent",
        "Eligible assignments made",
        "Active assignments outside PIM",
    )
    approval_labels = ("Requests needing approval", "Approved", "Denied", "Timed out", "Canceled")
    (median, p90), (prev_median, prev_p90) = pcts
    return DigestView(
        title=_title(cur, tz),
        period_start=cur.start.isoformat(),
        period_end=cur.end.isoformat(),
        timezone=options.timezone,
        tiles=tuple(
            Figure(label, now, before)
            for label, (now, before) in zip(tile_labels, tiles, strict=True)
        ),
        approvals=(
            *(
                Figure(label, now, before)
                for label, (now, before) in zip(approval_labels, approvals, strict=True)
            ),
            Figure("Median time to decision", median, prev_median, unit="s"),
            Figure("90th percentile time to decision", p90, prev_p90, unit="s"),
        ),
        daily_activations=tuple(daily),
        top_roles=tuple(Ranked(name, str(n)) for name, n in roles),
        slowest_approvers=tuple(Ranked(name, short_duration(mean)) for name, mean, _ in slow),
        after_hours=Figure("Activations outside working hours", after[0], after[1]),
        longest_activations=tuple(
            Ranked(f"{who} · {role}" + (" (still active)" if running else ""), short_duration(secs))
            for who, role, secs, running in longest
        ),
        frequent_activators=tuple(Ranked(name, str(n)) for name, n in frequent),
        ending_soon=tuple(
            _ending(who, role, kind, until, now=cur.end, tz=tz) for who, role, kind, until in ending
        ),
        alerts=alerts,
        checkpoint=checkpoint.line(),
        reviews=reviews,
    )
