"""The hot paths do a small, fixed number of SQL statements, however much data there is:
no query per row (N+1) in asking, approving, or ending a batch of activations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import event, func, select

from handlers.activation import ActivationAsk, request_activation
from handlers.approval import decide
from handlers.assignment import grant_schedule
from handlers.timers import lifecycle_actions, run_due_timers
from storage.audit import verify_chain
from storage.models import AuditEvent, OutboxMessage, Principal, Role, Schedule
from tests.unit.conftest import Engine

BOB, CAROL = "bob@contoso.com", "carol@contoso.com"
# Each bound is what the path does today; an N+1 blows through it at once.
# Asking is 7 on both databases: one joined read (person, role, what they hold and asked,
# a free request id), the request, the schedule and its timers, the outbox rows, the audit
# events (one INSERT chained onto the head this process last committed, which it does not
# read again: storage.audit_head); and BEGIN IMMEDIATE on SQLite, the audit chain's lock on
# PostgreSQL. Asking for a role that needs approval reads the approvers instead of writing
# a schedule. Approving is 10: the decider and request, the approvers, the guarded UPDATE,
# the approval step, the time-out's cancel, then what provisioning writes. A post to an
# approval channel splits the outbox INSERT in three (approvers, channel, requester): +2.
# On PostgreSQL an activation is two fewer: it takes the chain's lock in its outbox INSERT
# (RETURNING the lock), and writes the schedule and its timers in one INSERT ... WITH; an ask
# granted at once, three fewer: its request goes in that same statement.
ASK_BOUND, DECIDE_BOUND, SWEEP_BOUND = 7, 10, 16
CHANNEL_EXTRA = 2


def activating(eng: Engine, bound: int, *, fewer: int = 2) -> int:
    return bound - fewer if eng.uow.dialect == "postgresql" else bound


@contextmanager
def counting(eng: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_rest) -> None:  # type: ignore[no-untyped-def]
        seen.append(statement)

    target = eng.uow.engine.sync_engine
    event.listen(target, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(target, "before_cursor_execute", count)


async def test_asking_for_a_role_is_a_few_statements(eng):
    with counting(eng) as seen:
        view = await request_activation(
            eng.uow,
            eng.clock,
            actor=BOB,
            ask=ActivationAsk(
                role="helpdesk-admin", duration=timedelta(hours=1), justification="printer"
            ),
        )
    assert view.status == "Provisioned"
    assert len(seen) <= activating(eng, ASK_BOUND, fewer=3), "\n".join(seen)


async def test_asking_and_approving_are_a_few_statements(eng):
    with counting(eng) as asked:
        view = await request_activation(
            eng.uow,
            eng.clock,
            actor=BOB,
            ask=ActivationAsk(
                role="global-admin", duration=timedelta(hours=1), justification="rotate keys"
            ),
        )
    assert view.status == "PendingApproval"
    with counting(eng) as decided:
        done = await decide(
            eng.uow, eng.clock, actor=CAROL, request_id=view.id, approve=True, justification="ok"
        )
    assert done.status == "Provisioned"
    assert len(asked) <= ASK_BOUND, "\n".join(asked)
    assert len(decided) <= activating(eng, DECIDE_BOUND), "\n".join(decided)


async def test_denying_is_a_few_statements(eng):
    view = await request_activation(
        eng.uow,
        eng.clock,
        actor=BOB,
        ask=ActivationAsk(
            role="global-admin", duration=timedelta(hours=1), justification="rotate keys"
        ),
    )
    with counting(eng) as denied:
        done = await decide(
            eng.uow,
            eng.clock,
            actor=CAROL,
            request_id=view.id,
            approve=False,
            justification="not today",
        )
    assert done.status == "Denied"
    assert len(denied) <= DECIDE_BOUND, "\n".join(denied)


async def test_many_approvers_and_a_channel_cost_no_more_statements(eng):
    """Ten approvers and an approval channel: still one read for them and a few INSERTs."""
    async with eng.uow.transaction() as s:
        people = [
            Principal(
                email=f"approver{i}@contoso.com",
                display_name=f"Approver {i}",
                created_at=eng.clock.now(),
            )
            for i in range(10)
        ]
        s.add_all(people)
        role = await s.get(Role, "global-admin")
        role.settings = {
            **role.settings,
            "approvers": [p.email for p in people],
            "approval_channel": {"slack": "C0APPROVALS"},
        }
    with counting(eng) as asked:
        view = await request_activation(
            eng.uow,
            eng.clock,
            actor=BOB,
            ask=ActivationAsk(
                role="global-admin", duration=timedelta(hours=1), justification="rotate keys"
            ),
        )
    assert view.status == "PendingApproval"
    assert len(asked) <= ASK_BOUND + CHANNEL_EXTRA, "\n".join(asked)
    told = await eng.outbox()
    assert [to for to, kind, _ in told if kind == "approval_needed"] == [
        p.email for p in people
    ] + [None]
    assert [to for to, kind, _ in told if kind == "submitted"] == [BOB]
    with counting(eng) as decided:
        done = await decide(
            eng.uow,
            eng.clock,
            actor="approver3@contoso.com",
            request_id=view.id,
            approve=True,
            justification="ok",
        )
    assert done.status == "Provisioned"
    assert len(decided) <= DECIDE_BOUND, "\n".join(decided)


async def many_active(eng: Engine, n: int) -> None:
    """n more people, each with the quick role active for 30 s."""
    async with eng.uow.transaction() as s:
        role = await s.get(Role, "quick")
        for i in range(n):
            p = Principal(
                email=f"p{i}@contoso.com", display_name=f"P {i}", created_at=eng.clock.now()
            )
            s.add(p)
            await s.flush()
            await grant_schedule(
                s,
                actor="test",
                principal=p,
                role=role,
                kind="eligible",
                end=None,
                now=eng.clock.now(),
            )
    for i in range(n):
        await request_activation(
            eng.uow,
            eng.clock,
            actor=f"p{i}@contoso.com",
            ask=ActivationAsk(role="quick", duration=timedelta(seconds=30)),
        )


async def test_a_batch_of_expiries_costs_the_same_statements_as_one(eng):
    await many_active(eng, 40)
    eng.clock.advance(timedelta(seconds=25))  # past every warning, before any end
    with counting(eng) as warned:
        assert (
            await run_due_timers(eng.uow, eng.clock, worker="t", actions=lifecycle_actions()) == 40
        )
    eng.clock.advance(timedelta(seconds=5))
    with counting(eng) as ended:
        assert (
            await run_due_timers(eng.uow, eng.clock, worker="t", actions=lifecycle_actions()) == 40
        )
    assert len(warned) <= SWEEP_BOUND, "\n".join(warned)
    assert len(ended) <= SWEEP_BOUND, "\n".join(ended)
    async with eng.uow.transaction() as s:
        left = await s.scalar(
            select(func.count())
            .select_from(Schedule)
            .where(Schedule.kind == "active", Schedule.state == "Active")
        )
        expired = await s.scalar(select(func.count()).where(AuditEvent.action == "active.expired"))
        told = await s.scalar(select(func.count()).where(OutboxMessage.kind == "expired"))
        chain = await verify_chain(s)
    assert (left, expired, told) == (0, 40, 40)
    assert chain.ok, chain.reason


async def test_batches_end_everything_due_in_several_short_transactions(eng):
    await many_active(eng, 30)
    eng.clock.advance(timedelta(seconds=30))
    # 30 expiries and 30 warnings (overdue, so they say nothing) in batches of 7
    assert (
        await run_due_timers(eng.uow, eng.clock, worker="t", actions=lifecycle_actions(), batch=7)
        == 60
    )
    async with eng.uow.transaction() as s:
        expired = await s.scalar(select(func.count()).where(AuditEvent.action == "active.expired"))
        warned = await s.scalar(
            select(func.count()).where(AuditEvent.action == "access.expiry_warned")
        )
        chain = await verify_chain(s)
    assert (expired, warned) == (30, 0)
    assert chain.ok and chain.checked > 60, chain.reason


async def test_requests_time_out_together_each_told_and_audited(eng):
    asked = []
    for who in (BOB, CAROL):
        view = await request_activation(
            eng.uow,
            eng.clock,
            actor=who,
            ask=ActivationAsk(
                role="global-admin", duration=timedelta(hours=1), justification="rotate keys"
            ),
        )
        asked.append(view.id)
    eng.clock.advance(timedelta(hours=24))
    with counting(eng) as swept:
        assert (
            await run_due_timers(eng.uow, eng.clock, worker="t", actions=lifecycle_actions()) == 2
        )
    assert len(swept) <= SWEEP_BOUND, "\n".join(swept)
    told = await eng.outbox("timed_out")
    assert sorted((to, p["request"]["id"], p["request"]["status"]) for to, _, p in told) == sorted(
        [(BOB, asked[0], "TimedOut"), (CAROL, asked[1], "TimedOut")]
    )
    redraws = await eng.outbox("request_update")
    assert sorted(p["request"]["id"] for _, _, p in redraws) == sorted(asked)
    async with eng.uow.transaction() as s:
        events = (
            await s.scalars(
                select(AuditEvent.target).where(AuditEvent.action == "request.timed_out")
            )
        ).all()
        chain = await verify_chain(s)
    assert sorted(events) == [f"{BOB}/global-admin", f"{CAROL}/global-admin"]
    assert chain.ok, chain.reason
