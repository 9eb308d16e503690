"""Access reviews on a real database: the policy opens one on time, each reviewer gets a card,
the first decision wins, nobody reviews their own access, reminders go to whoever still has
items, and the end applies the results and tells everyone why."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from cards import views as v
from handlers.activation import ActivationAsk, request_activation
from handlers.errors import AlreadyDecided, JustificationRequired, PimError, SelfApprovalForbidden
from handlers.reviews.apply import end_review
from handlers.reviews.decide import NotAReviewer, ReviewClosed, decide_item
from handlers.reviews.export import export_review
from handlers.reviews.open import start_review
from handlers.reviews.progress import my_reviews
from storage.audit import verify_chain
from storage.models import AuditEvent, Timer
from tests.unit.review_helpers import T0, org, policy
from vocab.states import ReviewDecision, ReviewOutcome, ReviewStatus, ScheduleState, TimerStatus

CAROL, ERIN, ALICE, BOB = (
    "carol@contoso.com",
    "erin@contoso.com",
    "alice@contoso.com",
    "bob@contoso.com",
)


def cards_to(messages: list, email: str) -> list[v.ReviewCardView]:
    return [v.Notification.from_dict(p).review for e, p in messages if e == email]


async def actions(uow, name: str) -> list[AuditEvent]:
    async with uow.read() as s:
        return list(
            await s.scalars(
                select(AuditEvent).where(AuditEvent.action == name).order_by(AuditEvent.id)
            )
        )


async def test_scheduled_instance_opens_on_time_once_with_cards_to_each_reviewer(db_url):
    async with org(db_url) as o:
        assert await o.run_timers() == 0 and await o.instances() == []  # not due yet
        o.clock.set(T0)
        assert await o.run_timers() >= 1
        assert await o.run_timers() == 0  # nothing opens twice
        (instance,) = await o.instances()
        assert (instance.number, instance.status) == (1, ReviewStatus.IN_PROGRESS)
        assert instance.ends_at == T0 + timedelta(days=14)
        items = await o.items()
        assert len(items) == 3  # the three eligible assignments, not Bob's active one
        assert {i.recommendation for i in items} == {ReviewDecision.DENY}  # nobody activated
        cards = await o.messages(v.REVIEW_CARD)
        carol, erin, alice = (cards_to(cards, e) for e in (CAROL, ERIN, ALICE))
        # Carol reviews both global-admin eligibilities, never her own billing one; with
        # Carol the only billing approver, the admins review hers.
        assert [(i.person.email, i.role.id) for i in carol[0].items] == [
            (BOB, "global-admin"),
            ("dave@contoso.com", "global-admin"),
        ]
        assert [(i.person.email, i.role.id) for i in erin[0].items] == [
            (i.person.email, i.role.id) for i in carol[0].items
        ]
        assert [(i.person.email, i.role.id) for i in alice[0].items] == [(CAROL, "billing-admin")]
        assert carol[0].items[0].recommendation_reason == "no activation in 30 days"
        assert cards_to(cards, BOB) == []
        async with o.uow.read() as s:  # the next quarter's opening is already waiting
            keys = list(
                await s.scalars(
                    select(Timer.key).where(
                        Timer.kind == "review_open", Timer.status == TimerStatus.PENDING
                    )
                )
            )
        assert keys == [f"review-open:q-admins:2:{int((T0.replace(month=4)).timestamp())}"]
        assert len(await actions(o.uow, "review.opened")) == 1


async def test_recommendation_comes_from_activation_history(db_url):
    async with org(db_url) as o:
        for _ in range(2):
            await request_activation(
                o.uow,
                o.clock,
                actor=BOB,
                ask=ActivationAsk(
                    role="global-admin",
                    duration=timedelta(seconds=5),
                    justification=None,
                    ticket=None,
                ),
            )
            o.clock.advance(timedelta(seconds=10))
            await o.run_timers()
        await start_review(o.uow, o.clock, actor="cli:ops", review_id="q-admins")
        bob = await o.item_of(BOB, "global-admin")
        assert (bob.recommendation, bob.activations) == (ReviewDecision.APPROVE, 2)
        view = await my_reviews(o.uow, actor=CAROL)
        (line,) = [i for i in view.cards[0].items if i.person.email == BOB]
        assert line.recommendation_reason == "activated 2 times in 30 days"


async def test_first_decision_wins_and_every_reviewer_card_is_redrawn(db_url):
    async with org(db_url) as o:
        await start_review(o.uow, o.clock, actor="cli:ops", review_id="q-admins")
        item = await o.item_of(BOB, "global-admin")
        results = await asyncio.gather(
            decide_item(
                o.uow, o.clock, actor=CAROL, item_id=item.id, decision=ReviewDecision.APPROVE
            ),
            decide_item(
                o.uow,
                o.clock,
                actor=ERIN,
                item_id=item.id,
                decision=ReviewDecision.DENY,
                reason="left the team",
            ),
            return_exceptions=True,
        )
        won = [r for r in results if not isinstance(r, BaseException)]
        lost = [r for r in results if isinstance(r, BaseException)]
        assert len(won) == 1 and len(lost) == 1 and isinstance(lost[0], AlreadyDecided)
        assert "is already decided" in str(lost[0])
        decided = await o.item_of(BOB, "global-admin")
        assert decided.decision in (ReviewDecision.APPROVE, ReviewDecision.DENY)
        assert len(await actions(o.uow, "review.decided")) == 1
        # Both reviewers' cards are redrawn, showing the one decision.
        updates = await o.messages(v.REVIEW_UPDATE)
        drawn = {v.Notification.from_dict(p).review.card for _, p in updates}
        assert len(drawn) == 2
        for _, payload in updates:
            card = v.Notification.from_dict(payload).review
            (shown,) = [i for i in card.items if i.id == item.id]
            assert shown.decided and shown.decision == decided.decision
            assert card.decided == 1
        with pytest.raises(AlreadyDecided):
            await decide_item(
                o.uow, o.clock, actor=CAROL, item_id=item.id, decision=ReviewDecision.APPROVE
            )


async def test_nobody_reviews_their_own_access_and_outsiders_are_refused(db_url):
    async with org(db_url) as o:
        await start_review(o.uow, o.clock, actor="cli:ops", review_id="q-admins")
        carols = await o.item_of(CAROL, "billing-admin")
        with pytest.raises(SelfApprovalForbidden, match="your own access"):
            await decide_item(
                o.uow, o.clock, actor=CAROL, item_id=carols.id, decision=ReviewDecision.APPROVE
            )
        with pytest.raises(NotAReviewer):
            await decide_item(
                o.uow,
                o.clock,
                actor="dave@contoso.com",
                item_id=carols.id,
                decision=ReviewDecision.APPROVE,
            )
        refused = await actions(o.uow, "review.refused")
        assert [e.details["reason"] for e in refused] == [
            "self_approval_forbidden",
            "not_a_reviewer",
        ]
        assert (await o.item_of(CAROL, "billing-admin")).decision == ReviewDecision.NOT_REVIEWED


async def test_self_review_when_the_review_says_so(db_url):
    async with org(db_url, policy(**{"reviewers: approvers": "reviewers: self"})) as o:
        await start_review(o.uow, o.clock, actor="cli:ops", review_id="q-admins")
        bob = await o.item_of(BOB, "global-admin")
        card = await decide_item(
            o.uow, o.clock, actor=BOB, item_id=bob.id, decision=ReviewDecision.APPROVE
        )
        assert card.decided == 1 and card.total == 1
        cards = await o.messages(v.REVIEW_CARD)
        assert {e for e, _ in cards} == {BOB, CAROL, "dave@contoso.com"}


async def test_reasons_deny_always_and_every_decision_when_required(db_url):
    async with org(db_url, policy(require_reason="true")) as o:
        await start_review(o.uow, o.clock, actor="cli:ops", review_id="q-admins")
        bob = await o.item_of(BOB, "global-admin")
        with pytest.raises(JustificationRequired, match="asks for a reason"):
            await decide_item(
                o.uow, o.clock, actor=CAROL, item_id=bob.id, decision=ReviewDecision.APPROVE
            )
        with pytest.raises(PimError, match="control character"):
            await decide_item(
                o.uow,
                o.clock,
                actor=CAROL,
                item_id=bob.id,
                decision=ReviewDecision.APPROVE,
                reason="ok\x1b[31m",
            )
        await decide_item(
            o.uow,
            o.clock,
            actor=CAROL,
            item_id=bob.id,
            decision=ReviewDecision.APPROVE,
            reason="on call this quarter",
        )


async def test_deny_needs_a_reason(db_url):
    async with org(db_url) as o:
        await start_review(o.uow, o.clock, actor="cli:ops", review_id="q-admins")
        bob = await o.item_of(BOB, "global-admin")
        with pytest.raises(JustificationRequired, match="Say why you deny it"):
            await decide_item(
                o.uow, o.clock, actor=CAROL, item_id=bob.id, decision=ReviewDecision.DENY
            )
        await decide_item(
            o.uow, o.clock, actor=CAROL, item_id=bob.id, decision=ReviewDecision.APPROVE
        )


async def test_reminders_halfway_and_a_day_before_to_reviewers_with_open_items(db_url):
    async with org(db_url) as o:
        o.clock.set(T0)
        await o.run_timers()
        bob = await o.item_of(BOB, "global-admin")
        dave = await o.item_of("dave@contoso.com", "global-admin")
        await decide_item(
            o.uow, o.clock, actor=ERIN, item_id=bob.id, decision=ReviewDecision.APPROVE
        )
        await decide_item(
            o.uow, o.clock, actor=ERIN, item_id=dave.id, decision=ReviewDecision.DENY, reason="left"
        )
        before = len(await o.messages(v.REVIEW_CARD))
        o.clock.set(T0 + timedelta(days=7))  # halfway: Carol and Erin are done; Alice is not
        await o.run_timers()
        reminded = (await o.messages(v.REVIEW_CARD))[before:]
        assert [e for e, _ in reminded] == [ALICE]
        assert "Reminder" in reminded[0][1]["headline"]
        o.clock.set(T0 + timedelta(days=13))  # one day before the end
        await o.run_timers()
        again = (await o.messages(v.REVIEW_CARD))[before + 1 :]
        assert [e for e, _ in again] == [ALICE]
        assert len(await actions(o.uow, "review.reminded")) == 2


@pytest.mark.parametrize(
    "on_no_response,carol_kept", [("keep", True), ("remove", False), ("recommendation", False)]
)
async def test_the_end_applies_deny_and_on_no_response(db_url, on_no_response, carol_kept):
    async with org(db_url, policy(on_no_response)) as o:
        o.clock.set(T0)
        await o.run_timers()
        bob = await o.item_of(BOB, "global-admin")
        dave = await o.item_of("dave@contoso.com", "global-admin")
        await decide_item(
            o.uow, o.clock, actor=CAROL, item_id=bob.id, decision=ReviewDecision.APPROVE
        )
        await decide_item(
            o.uow,
            o.clock,
            actor=ERIN,
            item_id=dave.id,
            decision=ReviewDecision.DENY,
            reason="moved to sales",
        )
        # Carol's billing eligibility: nobody answers (pim-bot recommends deny: unused).
        o.clock.set(T0 + timedelta(days=14))
        await o.run_timers()
        (instance, *_) = await o.instances()
        assert instance.status == ReviewStatus.APPLIED
        assert await o.state_of(BOB, "global-admin", "eligible") == ScheduleState.ACTIVE
        assert (
            await o.state_of("dave@contoso.com", "global-admin", "eligible")
            == ScheduleState.REMOVED
        )
        carol_state = await o.state_of(CAROL, "billing-admin", "eligible")
        assert (carol_state == ScheduleState.ACTIVE) is carol_kept
        removed = await o.messages(v.REMOVED)
        told = {e: p["headline"] for e, p in removed}
        assert "Erin Ersatz denied it (moved to sales)" in told["dave@contoso.com"]
        if carol_kept:
            assert CAROL not in told
        elif on_no_response == "remove":
            assert "nobody approved it, and this review removes" in told[CAROL]
        else:
            assert "pim-bot recommended removing it (no activation in 30 days)" in told[CAROL]
        (summary,) = await o.messages(v.REVIEW_SUMMARY)
        assert summary[0] == ALICE
        assert list(summary[1]["details"]) == [
            "Reviewed 2 of 3",
            "Approved 1",
            "Denied 1",
            "Don't know 0",
            "No response 1",
            f"Applied: {1 if carol_kept else 2} removed",
        ]
        assert len(await actions(o.uow, "review.removed")) == (1 if carol_kept else 2)
        (applied,) = await actions(o.uow, "review.applied")
        assert applied.details["removed"] == (1 if carol_kept else 2)
        with pytest.raises(ReviewClosed):
            await decide_item(
                o.uow,
                o.clock,
                actor=ALICE,
                item_id=(await o.item_of(CAROL, "billing-admin")).id,
                decision=ReviewDecision.APPROVE,
            )
        async with o.uow.read() as s:
            assert (await verify_chain(s)).ok
        items = {i.id: i for i in await o.items()}
        assert items[bob.id].outcome == ReviewOutcome.KEEP
        assert items[dave.id].outcome == ReviewOutcome.REMOVE


async def test_review_end_closes_now_and_export_has_the_evidence(db_url):
    async with org(db_url, policy(**{"auto_apply: true": "auto_apply: false"})) as o:
        with pytest.raises(PimError, match="no open instance"):
            await end_review(o.uow, o.clock, actor="cli:ops", review_id="q-admins")
        await start_review(o.uow, o.clock, actor="cli:ops", review_id="q-admins")
        with pytest.raises(PimError, match="already has instance 1 open"):
            await start_review(o.uow, o.clock, actor="cli:ops", review_id="q-admins")
        dave = await o.item_of("dave@contoso.com", "global-admin")
        await decide_item(
            o.uow,
            o.clock,
            actor=ERIN,
            item_id=dave.id,
            decision=ReviewDecision.DENY,
            reason="moved, to sales",
        )
        line = await end_review(o.uow, o.clock, actor="cli:ops", review_id="q-admins")
        assert "reviewed 1 of 3" in line and "not applied (auto_apply off)" in line
        # auto_apply off: nothing removed
        assert (
            await o.state_of("dave@contoso.com", "global-admin", "eligible") == ScheduleState.ACTIVE
        )
        rows = [r async for r in export_review(o.uow, review_id="q-admins", number=1)]
        assert len(rows) == 3
        (denied,) = [r for r in rows if r["principal"] == "dave@contoso.com"]
        assert denied["reviewer"] == ERIN and denied["decision"] == "Deny"
        assert denied["reason"] == "moved, to sales" and denied["time"]
        assert denied["outcome"] == "Remove" and denied["applied"] == ""
        (bob,) = [r for r in rows if r["principal"] == BOB]
        assert bob["reviewer"] == f"{CAROL};{ERIN}" and bob["decision"] == "NotReviewed"
        assert bob["recommendation"] == "Deny (no activation in 30 days)"
        with pytest.raises(PimError, match="no instance 7"):
            [r async for r in export_review(o.uow, review_id="q-admins", number=7)]
        with pytest.raises(PimError, match="There is no review 'nope'"):
            await start_review(o.uow, o.clock, actor="cli:ops", review_id="nope")


async def test_an_instance_missed_entirely_while_down_is_skipped_not_opened_and_closed(db_url):
    async with org(db_url, policy("remove")) as o:
        o.clock.set(T0 + timedelta(days=20))  # the whole first instance passed while down
        await o.run_timers()
        assert await o.instances() == []
        assert await o.state_of(BOB, "global-admin", "eligible") == ScheduleState.ACTIVE
        (skipped,) = await actions(o.uow, "review.skipped")
        assert skipped.target == "q-admins#1"
        async with o.uow.read() as s:
            waiting = list(
                await s.scalars(
                    select(Timer.due_at).where(
                        Timer.kind == "review_open", Timer.status == TimerStatus.PENDING
                    )
                )
            )
        assert waiting == [T0.replace(month=4)]


async def test_the_removal_hook_gets_every_removed_assignment_in_the_same_transaction(db_url):
    from handlers.reviews.timers import review_actions
    from handlers.timers import lifecycle_actions, run_due_timers
    from storage.models import Schedule

    seen: list[tuple[list[int], list[ScheduleState]]] = []

    async def revoke(s, schedule_ids, now):
        states = list(await s.scalars(select(Schedule.state).where(Schedule.id.in_(schedule_ids))))
        seen.append((list(schedule_ids), states))

    async with org(db_url, policy("remove")) as o:
        o.clock.set(T0)
        await o.run_timers()
        o.clock.set(T0 + timedelta(days=14))
        await run_due_timers(
            o.uow,
            o.clock,
            worker="w",
            actions={**lifecycle_actions(), **review_actions(on_removed=revoke)},
        )
        ((ids, states),) = seen
        assert len(ids) == 3 and states == [ScheduleState.REMOVED] * 3
