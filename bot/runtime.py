"""The composition root: everything a running pim-bot needs, built from one Settings."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import event
from sqlalchemy.engine import make_url

from bot.config import Settings
from bot.digest_schedule import DigestSchedule, digest_options, digest_trigger
from bot.directory_wiring import (
    EntraGroupSource,
    EntraMembership,
    Microsoft,
    directory_readers,
    has_azure_credentials,
)
from bot.grants_worker import GrantsWorker
from bot.metrics import Metrics
from bot.outbox import OutboxWorker, Transport
from bot.periodic import PeriodicJob
from bot.scheduler import Sweeper
from handlers.chat import Commands, command_table
from handlers.clock import Clock, SystemClock
from handlers.digest.send import DIGEST_TIMER, digest_timer_action
from handlers.directory_sync import DirectoryReaders, PeopleSource, sync_directory
from handlers.grants.provider import Provider
from handlers.grants.reconcile import GrantBook, reconcile
from handlers.grants.reconcile_book import SqlGrantBook
from handlers.grants.state import revoke_removed
from handlers.group_eligibility import GroupMembership
from handlers.policy import apply_policy, read_policy_file
from handlers.reviews.apply import RemovalHook
from handlers.reviews.timers import review_actions
from handlers.timers import TimerActions, lifecycle_actions, one_by_one
from storage.audit import AuditKey, check_key
from storage.db import make_engine, normalize_url
from storage.migrate import upgrade
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Chat:
    """What a chat transport (Slack, Teams) gets from the composition root."""

    uow: UnitOfWork  # short database waits: someone is waiting for the answer
    clock: Clock
    poke: Callable[[], None]
    commands: Commands
    delivery_uow: UnitOfWork  # for the transport's outbox deliveries: the usual long waits
    budget: float  # seconds an interaction may take before it answers busy or slow
    groups: GroupMembership | None = None  # Entra group membership, when a directory is wired


# How patient each transport can be: (one database wait, the whole interaction), in seconds.
# Slack drops an answer after 3 s; Teams gives a turn about 15 s.
PATIENCE = {"slack": (1.5, 2.7), "teams": (5.0, 10.0)}


def _audit_key(settings: Settings) -> AuditKey | None:
    return AuditKey.from_text(settings.audit_key) if settings.audit_key else None


def _chat_uow(settings: Settings, wait: float, *, main: UnitOfWork) -> UnitOfWork:
    """Chat's own engine: every wait for the database is short, so a locked or unreachable
    database fails the use case (rolled back) in time to answer "busy". The sweeper and the
    CLI keep the long waits; nobody is waiting on them in a chat."""
    url, key = settings.database_url, _audit_key(settings)
    if make_url(normalize_url(url)).get_backend_name() != "sqlite":
        waits = {"timeout": wait, "server_settings": {"lock_timeout": f"{int(wait * 1000)}ms"}}
        return UnitOfWork(
            make_engine(url, pool_timeout=wait, connect_args=waits),
            audit_key=key,
            queued_with=main,
            direct_reads=waits,
        )
    engine = make_engine(url, pool_timeout=wait)

    @event.listens_for(engine.sync_engine, "connect")
    def _short_busy_wait(dbapi_connection: Any, _record: Any) -> None:
        # Runs after storage.db's own connect hook, so this wait wins.
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(wait * 1000)}")
        cursor.close()

    return UnitOfWork(engine, audit_key=key, queued_with=main)


@dataclass
class Runtime:
    settings: Settings
    uow: UnitOfWork
    clock: Clock
    commands: Commands
    chat_uows: dict[str, UnitOfWork] = field(default_factory=dict)
    transports: list[Transport] = field(default_factory=list)
    outbox: OutboxWorker | None = None
    sweeper: Sweeper | None = None
    # What each kind of durable timer does when it falls due: access's own, and the digest.
    timer_actions: TimerActions = field(default_factory=lifecycle_actions)
    # Revokes the real access behind assignments a review removed (see build()).
    review_removal_hook: RemovalHook | None = None
    # One provider per grant target kind: `serve` and `console` put in those of
    # bot.grant_providers (not here: bot.teams imports this module, and the Slack user group
    # provider lives in bot.slack); tests put in their own.
    providers: dict[str, Provider] = field(default_factory=dict)
    grants: GrantsWorker | None = None
    groups: GroupMembership | None = None  # eligibility through Entra groups (None: off)
    # The directory's readers (the policy's `directory:`), and what reconciliation reads: the
    # grant table and a provider per target kind. Left empty, those jobs do not run.
    directory: DirectoryReaders | None = None
    grant_book: GrantBook | None = None
    microsoft: Microsoft | None = None  # the directory's Graph client, made at first use
    slack_people: PeopleSource | None = None  # the Slack workspace, set where Slack starts
    metrics: Metrics = field(default_factory=Metrics)
    # When the digest is due: PIM_DIGEST_CRON unless set (a test fires it every few seconds,
    # where crontab's finest unit is a minute).
    digest_cron: CronTrigger | None = None

    @classmethod
    def build(cls, settings: Settings, *, clock: Clock | None = None) -> Runtime:
        # The digest (sent by the sweeper, previewed with `digest`) in PIM_TIMEZONE.
        options = digest_options(settings)
        uow = UnitOfWork(make_engine(settings.database_url), audit_key=_audit_key(settings))
        # The grant engine revokes the real access behind assignments an access review
        # removed (the scheduled end and `pim-bot review end` alike), in the same transaction.
        removal_hook: RemovalHook | None = revoke_removed
        # The directory (people, and eligibility through Entra groups) and reconciliation.
        microsoft = Microsoft()
        groups = (
            GroupMembership(EntraMembership(lambda g: EntraGroupSource(microsoft, g)))
            if has_azure_credentials()
            else None
        )
        metrics = Metrics()
        uow.on_commit = metrics.committed
        return cls(
            settings=settings,
            uow=uow,
            clock=clock or SystemClock(),
            commands=metrics.counted_commands(command_table(digest=options, groups=groups)),
            groups=groups,
            microsoft=microsoft,
            grant_book=SqlGrantBook(),
            timer_actions=metrics.timed_actions(
                {
                    **lifecycle_actions(),
                    DIGEST_TIMER: one_by_one(digest_timer_action(options)),
                    **review_actions(on_removed=removal_hook),
                }
            ),
            review_removal_hook=removal_hook,
            metrics=metrics,
        )

    def chat(self, transport: str = "slack") -> Chat:
        """What a chat transport needs, with its own engine of short database waits."""
        wait, budget = PATIENCE[transport]
        if transport not in self.chat_uows:
            self.chat_uows[transport] = _chat_uow(self.settings, wait, main=self.uow)
            self.chat_uows[transport].on_commit = self.metrics.committed
        return Chat(
            uow=self.chat_uows[transport],
            clock=self.clock,
            poke=self.poke,
            commands=self.commands,
            delivery_uow=self.uow,
            budget=budget,
            groups=self.groups,
        )

    async def prepare(self) -> None:
        """Bring the schema up to date and apply PIM_POLICY, before anything is served."""
        await upgrade(self.uow.engine)
        async with self.uow.transaction() as s:
            await check_key(s)  # refuse to start rather than fail every state change later
        if self.settings.policy_file:
            limit = self.settings.policy_max_bytes
            text = read_policy_file(self.settings.policy_file, max_bytes=limit)
            plan = await apply_policy(
                self.uow, self.clock, text=text, source=self.settings.policy_file, max_bytes=limit
            )
            logger.info("policy %s: %s", self.settings.policy_file, plan.render())

    def start_background(self, transports: list[Transport]) -> None:
        """Start delivering messages and running timers. Work that fell due while we were
        down runs at once: the first sweep is immediate."""
        self.transports = transports
        name = worker_name()
        self.outbox = OutboxWorker(
            self.uow,
            self.clock,
            transports,
            worker=name,
            concurrency=self.settings.outbox_concurrency,
            on_failure=self.metrics.delivery_failed,
        )
        digest = DigestSchedule(
            self.uow, self.clock, trigger=self.digest_cron or digest_trigger(self.settings)
        )
        self.sweeper = Sweeper(
            self.uow,
            self.clock,
            self.outbox,
            worker=name,
            sweep_seconds=self.settings.sweep_seconds,
            digest=digest,
            timer_actions=self.timer_actions,
            periodic=self.periodic_jobs(name),
        )
        self.sweeper.start()
        self.grants = GrantsWorker(
            self.uow,
            self.clock,
            self.providers,
            worker=name,
            lease=timedelta(seconds=self.settings.grant_lease_seconds),
            poke=self.sweeper.poke,
        )
        self.grants.start(poll_seconds=min(self.settings.sweep_seconds, 2.0))

    def periodic_jobs(self, worker: str) -> tuple[PeriodicJob, ...]:
        """The directory sync and reconciliation, for what this installation has wired."""
        jobs = []
        readers, book = self.directory, self.grant_book
        if readers is None and self.microsoft is not None:
            readers = directory_readers(self.microsoft, slack=self.slack_people)
        if readers is not None:
            jobs.append(
                PeriodicJob(
                    self.uow,
                    self.clock,
                    kind="directory_sync",
                    worker=worker,
                    interval=self.settings.directory_sync_interval,
                    work=lambda: sync_directory(self.uow, self.clock, readers=readers),
                )
            )
        if book is not None and self.providers:
            jobs.append(
                PeriodicJob(
                    self.uow,
                    self.clock,
                    kind="reconcile",
                    worker=worker,
                    interval=self.settings.reconcile_interval,
                    work=lambda: reconcile(
                        self.uow, self.clock, book=book, providers=self.providers
                    ),
                )
            )
        return tuple(jobs)

    def poke(self) -> None:
        if self.sweeper is not None:
            self.sweeper.poke()
        if self.grants is not None:
            self.grants.poke()

    async def close(self) -> None:
        if self.sweeper is not None:
            await self.sweeper.stop()
        if self.grants is not None:
            await self.grants.stop()
        for provider in self.providers.values():  # each closes its HTTP session
            close = getattr(provider, "close", None)
            if close is not None:
                await close()
        if self.microsoft is not None:
            await self.microsoft.close()
        for chat_uow in self.chat_uows.values():
            await chat_uow.engine.dispose()
        await self.uow.engine.dispose()
