"""A terminal chat over the same grammar and engine: try the whole PIM loop on a laptop.

Console-only words: `as EMAIL` switches identity, `whoami`, `wait DURATION` lets time pass
(the console's clock jumps ahead, timer by timer, so `wait 1d` takes a moment, not a day),
`quit`. `$last` stands for the last request id shown. Ctrl-C cancels a `wait`; at the prompt
it clears the line.

What a command causes (the approver's card, the requester's notice) is delivered before the
next prompt, or before the next line of a script is read, so it shows under the command that
caused it. In a terminal, notices that arrive meanwhile (an expiry) print above the prompt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import sys
from datetime import timedelta
from typing import TextIO

from bot.console_inbox import ConsoleTransport, release
from bot.runtime import Runtime
from cards.text import render
from cards.views import Reply, View, when
from handlers.chat import run_text
from handlers.clock import ShiftedClock
from handlers.durations import DurationError, parse_duration
from storage.claims import next_outbox_due, next_timer_due
from storage.grant_claims import next_grant_due

logger = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"\bR-[0-9A-Z]{4,8}\b")
_CONSOLE_HELP = (
    "Console only: as EMAIL — be someone else · whoami · wait DURATION — let time pass · quit\n"
    "$last stands for the last request id shown. Ctrl-C cancels a wait."
)
_WAIT_USAGE = "wait DURATION (e.g. wait 30s, wait 1d)"
# What a command caused is on screen before going on, unless delivery takes longer than
# this (a busy machine); then it prints when it arrives, above the prompt. A script has no
# one waiting at a prompt, and its transcript should not depend on the machine's load: it
# waits longer, though not for ever (a provider may hang).
_SETTLE_SECONDS = 10.0
_SCRIPT_SETTLE_SECONDS = 120.0


class Console:
    def __init__(self, runtime: Runtime, *, actor: str, stdout: TextIO | None = None) -> None:
        self.runtime = runtime
        self._stdout = stdout  # None: whatever sys.stdout is when printing (patch_stdout)
        self.transport = ConsoleTransport(self.print)
        self.transport.current = actor.strip().lower()
        self.last_request: str | None = None
        self._waiting: asyncio.Task[None] | None = None
        self._main: asyncio.Task[None] | None = None
        self._settle_seconds = _SETTLE_SECONDS

    def print(self, text: str) -> None:
        out = self._stdout or sys.stdout
        out.write(text + "\n")
        out.flush()
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
            await self._command(text, show_console_help=word == "help" and not rest.strip())
        return True

    async def _command(self, text: str, *, show_console_help: bool) -> None:
        if self.last_request:
            text = re.sub(r"\$last\b", self.last_request, text, flags=re.IGNORECASE)
        try:
            view = await run_text(
                self.runtime.uow,
                self.runtime.clock,
                commands=self.runtime.commands,
                actor=self.actor,
                text=text,
            )
        except Exception as err:  # the console's one central handler: keep the session
            logger.exception("console command failed: %s", text)
            self.print(
                render(
                    Reply(
                        text=f"Something went wrong ({type(err).__name__}); nothing was changed.",
                        ok=False,
                    )
                )
            )
            return
        self._remember_answer(view)
        self.print(render(view))
        if show_console_help:
            self.print(_CONSOLE_HELP)
        self.runtime.poke()
        await self.settle()

    def _remember_answer(self, view: View) -> None:
        if isinstance(view, Reply) and view.ok:
            self.transport.answered(email=self.actor, text=view.text, request=view.request)

    async def settle(self) -> None:
        """Deliver what is due now (the notices a command caused), before going on."""
        sweeper = self.runtime.sweeper
        if sweeper is None:
            return
        grants, kinds = self.runtime.grants, list(self.runtime.providers)
        deadline = asyncio.get_running_loop().time() + self._settle_seconds
        while asyncio.get_running_loop().time() < deadline:
            if grants is not None:  # a grant's outcome is news the command caused, too
                await grants.run_once()
            await sweeper.tick()
            async with self.runtime.uow.read() as s:
                due = [
                    await next_timer_due(s),
                    await next_outbox_due(s, transports=[self.transport.name]),
                    await next_grant_due(s, kinds=kinds) if grants is not None else None,
                ]
            now = self.runtime.clock.now()
            # A background sweep may hold what the command caused (claimed, so not due):
            # done means nothing is due once it has ended.
            if all(at is None or at > now for at in due) and not sweeper.busy:
                return
            await asyncio.sleep(0.02)

    async def _switch(self, email: str) -> None:
        if "@" not in email:
            self.print(render(Reply(text="Say who: as EMAIL", ok=False)))
            return
        self.transport.current = email.lower()
        self.print(f"You are now {email.lower()}.")
        await release(self.runtime.uow, email=email.lower(), now=self.runtime.clock.now())
        self.runtime.poke()
        await self.settle()

    async def _wait(self, raw: str) -> None:
        if not raw:
            self.print(
                render(Reply(text="Say how long: wait DURATION", ok=False, usage=_WAIT_USAGE))
            )
            return
        try:
            delay = parse_duration(raw)
        except DurationError as err:
            self.print(render(Reply(text=str(err), ok=False, usage="wait DURATION")))
            return
        self._waiting = asyncio.create_task(self._pass_time(delay))
        try:
            await self._waiting
        except asyncio.CancelledError:
            if not self._waiting.cancelled():
                raise  # the console itself is being stopped
            self.print(f"Wait canceled; it is {when(self.runtime.clock.now().isoformat())}.")
        finally:
            self._waiting = None

    async def _pass_time(self, delay: timedelta) -> None:
        clock = self.runtime.clock
        if not isinstance(clock, ShiftedClock):  # a real clock: really wait
            await asyncio.sleep(delay.total_seconds())
            await self.settle()
            return
        target = clock.now() + delay
        # Timer by timer, so a warning comes before the expiry it announces, each on time.
        while True:
            async with self.runtime.uow.read() as s:
                due = await next_timer_due(s)
            if due is None or due > target:
                break
            clock.move_to(due)
            await self.settle()
        clock.move_to(target)
        await self.settle()

    def interrupt(self) -> None:
        """Ctrl-C: cancel a wait in progress; with nothing to cancel, leave (a script) or
        just show the prompt again (a terminal)."""
        if self._waiting is not None and not self._waiting.done():
            self._waiting.cancel()
        elif self._main is not None and not sys.stdin.isatty():
            self._main.cancel()
        else:  # the terminal dropped the typed line; show a fresh prompt
            out = self._stdout or sys.stdout
            out.write(f"\n{self.actor}> ")
            out.flush()

    async def run(self, stdin: TextIO) -> None:
        self._main = asyncio.current_task()  # type: ignore[assignment]
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGINT, self.interrupt)
        try:
            if stdin.isatty() and sys.stdout.isatty() and self._stdout is None:
                await self._run_prompt()
            else:
                await self._run_lines(stdin)
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGINT)

    async def _sit_down(self) -> None:
        """Whatever waited for this person, from this run or an earlier one, is due now."""
        await release(self.runtime.uow, email=self.actor, now=self.runtime.clock.now())
        await self.settle()

    async def _run_prompt(self) -> None:
        """A terminal: prompt_toolkit keeps the prompt at the bottom and prints every notice
        above it; Ctrl-C there clears the line, Ctrl-D leaves."""
        from prompt_toolkit import PromptSession
        from prompt_toolkit.patch_stdout import patch_stdout

        session: PromptSession[str] = PromptSession()
        with patch_stdout(raw=True):
            self.print(f"pim-bot console as {self.actor}. Type `help`, `as EMAIL`, `quit`.")
            await self._sit_down()
            while True:
                try:
                    line = await session.prompt_async(f"{self.actor}> ")
                except KeyboardInterrupt:
                    continue
                except EOFError:
                    break
                if not await self.handle(line):
                    break

    async def _run_lines(self, stdin: TextIO) -> None:
        """A script (or a terminal we cannot draw on): one line at a time, each echoed with
        who ran it when piped; what it caused is on screen before the next is read."""
        interactive = stdin.isatty()
        if not interactive:
            self._settle_seconds = _SCRIPT_SETTLE_SECONDS
        if interactive:
            self.print(f"pim-bot console as {self.actor}. Type `help`, `as EMAIL`, `quit`.")
        await self._sit_down()
        while True:
            if interactive:
                (self._stdout or sys.stdout).write(f"{self.actor}> ")
                (self._stdout or sys.stdout).flush()
            line = await asyncio.to_thread(stdin.readline)
            if not line:
                break
            if not interactive:
                self.print(f"{self.actor}> {line.rstrip()}")
            if not await self.handle(line):
                break
        await self.settle()
