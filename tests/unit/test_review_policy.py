"""The policy file's `reviews:` section: checked by line, planned, dry-run, applied, exported,
pruned; and the digest shows open reviews, with the unused-roles alert pointing at one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from handlers.digest.alerts import AlertThresholds
from handlers.digest.report import DigestOptions, compute_digest
from handlers.errors import PolicyError
from handlers.policy import apply_policy, export_policy
from handlers.reviews.open import start_review
from storage.models import AuditEvent, ReviewDefinition, Timer
from tests.unit.review_helpers import POLICY, T0, org, policy
from vocab.states import TimerStatus

BAD = (
    POLICY.split("reviews:")[0]
    + """\
reviews:
  - id: Q Admins
    name: Quarterly
    roles: [global-admin, nope]
    assignments: both
    reviewers: [zed@contoso.com]
    recurrence: fortnightly
    start: 2027-13-01
    duration: 14x
    on_no_response: shrug
    auto_apply: yes please
    colour: blue
  - {id: q2, name: Q2, roles: all, start: 2027-01-04}
"""
)


async def test_bad_reviews_name_every_mistake_by_line_and_change_nothing(db_url):
    async with org(db_url) as o:
        with pytest.raises(PolicyError) as err:
            await apply_policy(o.uow, o.clock, text=BAD, source="policy.yaml")
    lines = str(err.value).splitlines()
    assert lines[0] == "policy.yaml: 11 errors, nothing changed"
    assert lines[1:] == [
        "policy.yaml:22: reviews[0].id: 'Q Admins' is not a review id: use lower-case "
        "letters, digits, - _ . (at most 60)",
        "policy.yaml:24: reviews[0].roles[1]: 'nope' is not listed under roles",
        "policy.yaml:25: reviews[0].assignments: must be one of eligible, active, all, not 'both'",
        "policy.yaml:26: reviews[0].reviewers[0]: 'zed@contoso.com' is not listed under principals",
        "policy.yaml:27: reviews[0].recurrence: must be one of once, weekly, monthly, "
        "quarterly, semiannual, annual, not 'fortnightly'",
        "policy.yaml:28: reviews[0].start: '2027-13-01' is not a date; use e.g. 2027-01-04",
        "policy.yaml:29: reviews[0].duration: '14x' is not a duration; use e.g. 90m, 2h, "
        "1h30m, 1d or PT2H",
        "policy.yaml:30: reviews[0].on_no_response: must be one of keep, remove, "
        "recommendation, not 'shrug'",
        "policy.yaml:31: reviews[0].auto_apply: must be true or false, not 'yes please'",
        "policy.yaml:32: reviews[0].colour: unknown key (expected one of: id, name, roles, "
        "assignments, reviewers, recurrence, start, duration, on_no_response, auto_apply, "
        "require_reason)",
        "policy.yaml:33: reviews[1]: duration is required, e.g. 14d",
    ]


async def test_dry_run_plans_apply_audits_export_round_trips_prune_retires(db_url):
    async with org(db_url, POLICY.split("reviews:")[0]) as o:
        plan = await apply_policy(o.uow, o.clock, text=policy(), dry_run=True)
        assert plan.render() == "+ review q-admins (Quarterly privileged role review)"
        async with o.uow.read() as s:
            assert (await s.scalars(select(ReviewDefinition))).all() == []
        await apply_policy(o.uow, o.clock, text=policy())
        async with o.uow.read() as s:
            (event,) = (
                await s.scalars(
                    select(AuditEvent).where(AuditEvent.action == "policy.review.created")
                )
            ).all()
            assert event.target == "q-admins" and event.details["duration"] == "14d"
            (timer,) = (await s.scalars(select(Timer).where(Timer.kind == "review_open"))).all()
            assert timer.due_at == T0
        assert (await apply_policy(o.uow, o.clock, text=policy())).render() == "No changes."
        exported = await export_policy(o.uow)
        assert "reviews:" in exported and "on_no_response: keep" in exported
        assert (await apply_policy(o.uow, o.clock, text=exported)).render() == "No changes."
        # A new start day moves the waiting opening; the old one is canceled.
        moved = policy().replace("start: 2027-01-04", "start: 2027-02-01")
        assert (
            await apply_policy(o.uow, o.clock, text=moved)
        ).render() == "~ review q-admins: start 2027-01-04 -> 2027-02-01"
        async with o.uow.read() as s:
            timers = {
                t.due_at.month: t.status
                for t in await s.scalars(select(Timer).where(Timer.kind == "review_open"))
            }
        assert timers == {1: TimerStatus.CANCELED, 2: TimerStatus.PENDING}
        without = POLICY.split("reviews:")[0]
        assert (await apply_policy(o.uow, o.clock, text=without)).render() == "No changes."
        assert (
            await apply_policy(o.uow, o.clock, text=without, prune=True)
        ).render() == "- review q-admins"
        async with o.uow.read() as s:
            assert {
                t.status for t in await s.scalars(select(Timer).where(Timer.kind == "review_open"))
            } == {TimerStatus.CANCELED}


async def test_digest_shows_open_reviews_and_the_unused_roles_alert_points_at_one(db_url):
    async with org(db_url) as o:
        o.clock.advance(timedelta(days=40))  # eligible for 40 days, never activated
        await start_review(o.uow, o.clock, actor="cli:ops", review_id="q-admins")
        view = await compute_digest(
            o.uow,
            end=o.clock.now(),
            options=DigestOptions(alert_thresholds=AlertThresholds(stale_eligibility_days=30)),
        )
        (line,) = view.reviews
        assert line.label == "Quarterly privileged role review #1"
        assert line.value.startswith("0 of 3 decided · ends ")
        stale = [a.text for a in view.alerts if a.code.startswith("stale_eligibility:")]
        assert stale and all(t.endswith("Review it: pim-bot review start q-admins") for t in stale)
