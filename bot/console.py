"""A terminal chat over the same grammar and engine: try the whole PIM loop on a laptop.

Console-only words: `as EMAIL` switches identity, `whoami`, `wait DURATION` lets time pass
(handy in scripts), `quit`. `$last` stands for the last request id shown.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Callable
from typing import Any, TextIO

from bot.outbox import Delivery, Recipient
from bot.runtime import Runtime
from cards.text import render
from cards.views import Reply
from handlers.chat import run_text
from handlers.durations import DurationError, parse_duration

logger = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"\bR-[0-9A-Z]{4,8}\b")
_CONSOLE_HELP = (
    "Console only: as EMAIL — be someone else · whoami · wait DURATION — let time pass · quit\n"
    "$last stands for the last request id shown."
)


class ConsoleTransport:
    """Delivers to whoever sits at this terminal; other people's messages wait in their inbox
    until the console switches to them with `as EMAIL`."""

    name = "console"

    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.current: str | None = None
        self.inbox: dict[str, list[str]] = {}

    def reaches(self, recipient: Recipient | None, channel: dict[str, str] | None) -> bool:
        return recipient is not None

    def _deliver_text(self, email: str, text: str) -> None:
        if email == self.current:
            self.out(text)
        else:
            self.inbox.setdefault(email, []).append(text)

    async def send(self, delivery: Delivery) -> dict[str, Any] | None:
        assert delivery.recipient is not None
        self._deliver_text(delivery.recipient.email, render(delivery.note))
        return {"email": delivery.recipient.email}

    async def update(self, delivery: Delivery) -> None:
        req, review = delivery.note.request, delivery.note.review
        label = req.id if req else f"“{review.name}”" if review else "a request"
        for ref in delivery.posted:
            self._deliver_text(ref["email"], f"🔄 Card {label} updated: {delivery.note.headline}")

    def switch(self, email: str) -> list[str]:
        self.current = email
        return self.inbox.pop(email, [])


class Console:
    def __init__(self, runtime: Runtime, *, actor: str, stdout: TextIO | None = None) -> None:
        self.runtime = runtime
        self.stdout = stdout or sys.stdout
        self.transport = ConsoleTransport(self.print)
        self.transport.current = actor.strip().lower()
        self.last_request: str | None = None

    def print(self, text: str) -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()
        for found in _REQUEST_ID.findall(text):
            self.last_request = found

    @property
    def actor(self) -> str:
        assert self.transport.current is not None
        return self.transport.current

    async def handle(self, line: str) -> bool:
        """Run one line; False means the user asked to leave."""
        text = line.strip()
        if not text or text.startswith("#"):
            return True
        word, _, rest = text.partition(" ")
        word = word.lower()
        if word in ("quit", "exit"):
            return False
        if word == "whoami":
            self.print(f"You are {self.actor}.")
        elif word == "as":
            await self._switch(rest.strip())
        elif word == "wait":
            await self._wait(rest.strip())
        else:
            if self.last_request:
                text = re.sub(r"\$last\b", self.last_request, text, flags=re.IGNORECASE)
            try:
                view = await run_text(self.runtime.uow, self.runtime.clock,
                                      commands=self.runtime.commands, actor=self.actor,
                                      text=text)
            except Exception as err:  # the console's one central handler: keep the session
                logger.exception("console command failed: %s", text)
                self.print(render(Reply(
                    text=f"Something went wrong ({type(err).__name__}); nothing was changed.",
                    ok=False)))
                return True
            self.print(render(view))
            if word == "help" and not rest.strip():
                self.print(_CONSOLE_HELP)
            self.runtime.poke()
            await asyncio.sleep(0.05)  # let the notifications this caused print in order
        return True

    async def _switch(self, email: str) -> None:
        if "@" not in email:
            self.print(render(Reply(text="Say who: as EMAIL", ok=False)))
            return
        waiting = self.transport.switch(email.lower())
        self.print(f"You are now {email.lower()}.")
        for text in waiting:
            self.print(text)

    async def _wait(self, raw: str) -> None:
        try:
            delay = parse_duration(raw or "1s")
        except DurationError as err:
            self.print(render(Reply(text=str(err), ok=False, usage="wait DURATION")))
            return
        await asyncio.sleep(min(delay.total_seconds(), 3600))

    async def run(self, stdin: TextIO) -> None:
        interactive = stdin.isatty()
        if interactive:
            self.print(f"pim-bot console as {self.actor}. Type `help`, `as EMAIL`, `quit`.")
        while True:
            if interactive:
                self.stdout.write(f"{self.actor}> ")
                self.stdout.flush()
            line = await asyncio.to_thread(stdin.readline)
            if not line:
                break
            if not interactive:
                self.print(f"{self.actor}> {line.rstrip()}")
            if not await self.handle(line):
                break
        # Let what the last command caused reach the screen before leaving.
        await asyncio.sleep(0.3)
