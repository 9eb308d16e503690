"""The composition root: everything a running pim-bot needs, built from one Settings."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field

from bot.config import Settings
from bot.digest_schedule import DigestSchedule, digest_options, digest_trigger
from bot.outbox import OutboxWorker, Transport
from bot.scheduler import Sweeper
from handlers import commands
from handlers.chat import digest_command, register_command
from handlers.clock import Clock, SystemClock
from handlers.digest.send import register_digest
from handlers.policy import apply_policy, read_policy_file
from storage.audit import AuditKey, check_key
from storage.db import make_engine
from storage.migrate import upgrade
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Runtime:
    settings: Settings
    uow: UnitOfWork
    clock: Clock
    transports: list[Transport] = field(default_factory=list)
    outbox: OutboxWorker | None = None
    sweeper: Sweeper | None = None

    @classmethod
    def build(cls, settings: Settings, *, clock: Clock | None = None) -> Runtime:
        key = AuditKey.from_text(settings.audit_key) if settings.audit_key else None
        uow = UnitOfWork(make_engine(settings.database_url), audit_key=key)
        runtime = cls(settings=settings, uow=uow, clock=clock or SystemClock())
        # The digest (sent by the sweeper, previewed with `digest`) in PIM_TIMEZONE.
        options = digest_options(settings)
        register_digest(options)
        register_command(commands.Digest, digest_command(options))
        return runtime

    async def prepare(self) -> None:
        """Bring the schema up to date and apply PIM_POLICY, before anything is served."""
        await upgrade(self.uow.engine)
        async with self.uow.transaction() as s:
            await check_key(s)  # refuse to start rather than fail every state change later
        if self.settings.policy_file:
            limit = self.settings.policy_max_bytes
            text = read_policy_file(self.settings.policy_file, max_bytes=limit)
            plan = await apply_policy(self.uow, self.clock, text=text,
                                      source=self.settings.policy_file, max_bytes=limit)
            logger.info("policy %s: %s", self.settings.policy_file, plan.render())

    def start_background(self, transports: list[Transport]) -> None:
        """Start delivering messages and running timers. Work that fell due while we were
        down runs at once: the first sweep is immediate."""
        self.transports = transports
        name = worker_name()
        self.outbox = OutboxWorker(self.uow, self.clock, transports, worker=name)
        digest = DigestSchedule(self.uow, self.clock, trigger=digest_trigger(self.settings))
        self.sweeper = Sweeper(self.uow, self.clock, self.outbox, worker=name,
                               sweep_seconds=self.settings.sweep_seconds, digest=digest)
        self.sweeper.start()

    def poke(self) -> None:
        if self.sweeper is not None:
            self.sweeper.poke()

    async def close(self) -> None:
        if self.sweeper is not None:
            await self.sweeper.stop()
        await self.uow.engine.dispose()
