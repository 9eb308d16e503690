"""Prometheus metrics: what `/metrics` serves.

Counting happens at the edges of the engine, never inside it: commands are counted around the
command table's runners, audit actions (decisions, activations, expiries, grant states) as the
unit of work commits them, timer lag around the timer actions, delivery failures where the
outbox worker sees them. Each Runtime has its own registry (no module-level singleton), so
tests build as many as they like.

A new state change is counted by writing its audit event: `pim_audit_events_total{action}`
counts every action, and an action named `grant.<state>` also bumps
`pim_grant_states_total{state}` (see `count_grant_state` for code that has no audit event).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cards.views import Reply, View
from handlers.chat import Commands, Runner
from handlers.errors import PimError
from handlers.timers import BatchAction, TimerActions
from storage.models import OutboxMessage
from vocab.states import OutboxStatus

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_DECISIONS = {
    "request.approved": "approved",
    "request.denied": "denied",
    "request.timed_out": "timed_out",
    "request.canceled": "canceled",
}
_WAITING = (OutboxStatus.PENDING, OutboxStatus.SENDING)


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.commands = Counter(
            "pim_commands",
            "Chat commands run, by verb and outcome (ok, refused, error)",
            ["verb", "outcome"],
            registry=r,
        )
        self.audit_events = Counter(
            "pim_audit_events", "Audit events committed, by action", ["action"], registry=r
        )
        self.decisions = Counter(
            "pim_decisions", "Requests decided or closed, by outcome", ["decision"], registry=r
        )
        self.activations = Counter("pim_activations", "Roles activated", registry=r)
        self.expiries = Counter(
            "pim_expiries",
            "Assignments that ended at their end time, by kind (active, eligible)",
            ["kind"],
            registry=r,
        )
        self.grant_states = Counter(
            "pim_grant_states", "Grants that reached a state", ["state"], registry=r
        )
        self.timer_lag = Histogram(
            "pim_timer_lag_seconds",
            "How late a timer ran after it fell due, by kind",
            ["kind"],
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.outbox_depth = Gauge(
            "pim_outbox_depth", "Outbox messages waiting to be sent", registry=r
        )
        self.outbox_age = Gauge(
            "pim_outbox_oldest_age_seconds",
            "Age of the oldest outbox message still waiting (0 when none)",
            registry=r,
        )
        self.delivery_failures = Counter(
            "pim_delivery_failures",
            "Failed delivery attempts, by transport and reason (retry, undeliverable, error)",
            ["transport", "reason"],
            registry=r,
        )
        self.request_latency = Histogram(
            "pim_http_request_duration_seconds",
            "HTTP request latency, by route and status",
            ["route", "status"],
            registry=r,
        )

    # -- hooks ------------------------------------------------------------------------------
    def committed(self, actions: Sequence[str]) -> None:
        """UnitOfWork's commit hook: the audit actions one transaction committed."""
        for action in actions:
            self.audit_events.labels(action).inc()
            if (decision := _DECISIONS.get(action)) is not None:
                self.decisions.labels(decision).inc()
            elif action == "role.activated":
                self.activations.inc()
            elif action.startswith("grant."):
                self.count_grant_state(action.removeprefix("grant."))
            elif action.endswith(".expired"):
                self.expiries.labels(action.removesuffix(".expired")).inc()

    def count_grant_state(self, state: str) -> None:
        """For grant code to call where a state change has no audit event of its own."""
        self.grant_states.labels(state).inc()

    def delivery_failed(self, transport: str, reason: str) -> None:
        self.delivery_failures.labels(transport, reason).inc()

    def counted_commands(self, commands: Commands) -> Commands:
        """The command table with each runner counted by verb and outcome."""
        return MappingProxyType(
            {kind: self._count(kind.__name__.lower(), run) for kind, run in commands.items()}
        )

    def _count(self, verb: str, run: Runner) -> Runner:
        @functools.wraps(run)  # inspect.unwrap() finds the runner the engine built
        async def counted(*args: Any) -> View:
            try:
                view = await run(*args)
            except PimError:  # a typed refusal: the person gets a one-line answer
                self.commands.labels(verb, "refused").inc()
                raise
            except Exception:
                self.commands.labels(verb, "error").inc()
                raise
            refused = isinstance(view, Reply) and not view.ok
            self.commands.labels(verb, "refused" if refused else "ok").inc()
            return view

        return counted

    def timed_actions(self, actions: TimerActions) -> TimerActions:
        """The timer-action table with each batch's lag (now minus due time) observed."""
        return {kind: self._lag(kind, action) for kind, action in actions.items()}

    def _lag(self, kind: str, action: BatchAction) -> BatchAction:
        histogram = self.timer_lag.labels(kind)

        async def timed(s: AsyncSession, timers: Sequence[Any], now: datetime) -> Any:
            for t in timers:
                histogram.observe(max(0.0, (now - t.due_at).total_seconds()))
            return await action(s, timers, now)

        return timed

    def observe_request(self, route: str, status: int, started: float) -> None:
        self.request_latency.labels(route, str(status)).observe(time.perf_counter() - started)

    # -- scrape -----------------------------------------------------------------------------
    async def refresh(self, s: AsyncSession, now: datetime) -> None:
        """Outbox depth and age are read from the database at scrape time: every replica
        reports the same shared queue."""
        count, oldest = (
            await s.execute(
                select(func.count(), func.min(OutboxMessage.created_at)).where(
                    OutboxMessage.status.in_(_WAITING)
                )
            )
        ).one()
        self.outbox_depth.set(count)
        self.outbox_age.set(
            max(0.0, (now - _aware(oldest, now)).total_seconds()) if oldest else 0.0
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _aware(at: datetime, now: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=now.tzinfo)
