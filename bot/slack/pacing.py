"""Slack's rate limits as this process has met them. A 429 pauses what it names and nothing
else: chat.postMessage is limited per channel (about one a second, with bursts) and, above
that, per workspace; every other method per workspace.

A refused post to a channel we have hardly posted to cannot be that channel's limit: it is
the workspace's. Then posting pauses as a whole for the Retry-After, and posts are spaced
out from then on (the spacing doubles at each such 429 and shrinks a little with every
post that goes through), so a burst of thousands of DMs settles near the rate Slack allows
instead of bouncing off it."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

CHANNEL_SCOPED = frozenset({"chat.postMessage"})
# Fewer posts than this to a channel in the last WINDOW seconds: it cannot be limited itself.
CHANNEL_BURST, WINDOW = 2, 3.0
MIN_SPACING, MAX_SPACING, RELAX = 0.01, 1.0, 0.98


class Pacer:
    def __init__(self, *, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._method_until: dict[str, float] = {}
        self._channel_until: dict[str, dict[str, float]] = {}
        self._spacing: dict[str, float] = {}
        self._next_slot: dict[str, float] = {}
        self._posts: dict[str, deque[float]] = {}

    def wait(self, method: str, channel: str = "") -> float:
        """Seconds before `method` may be called (for `channel`): 0.0 when it may now."""
        until = self._method_until.get(method, 0.0)
        if channel:
            until = max(until, self._channel_until.get(method, {}).get(channel, 0.0))
        return max(0.0, until - self._now())

    def reserve(self, method: str, channel: str = "") -> float:
        """Like wait(), and also take the next evenly spaced turn when posts are spaced."""
        delay = self.wait(method, channel)
        spacing = self._spacing.get(method, 0.0)
        if not spacing:
            return delay
        now = self._now()
        slot = max(now + delay, self._next_slot.get(method, 0.0))
        self._next_slot[method] = slot + spacing
        return slot - now

    def went_through(self, method: str, channel: str = "") -> None:
        if method not in CHANNEL_SCOPED:
            return
        now = self._now()
        self._posts.setdefault(channel, deque(maxlen=CHANNEL_BURST)).append(now)
        if len(self._posts) > 5000:  # forget channels not posted to lately
            for key in [c for c, q in self._posts.items() if q[-1] < now - WINDOW]:
                del self._posts[key]
        spacing = self._spacing.get(method, 0.0) * RELAX
        self._spacing[method] = spacing if spacing >= MIN_SPACING else 0.0

    def limited(self, method: str, channel: str, seconds: float) -> None:
        """Slack answered 429 with this Retry-After."""
        now = self._now()
        until = now + seconds
        if method in CHANNEL_SCOPED and channel:
            paused = self._channel_until.setdefault(method, {})
            paused[channel] = max(paused.get(channel, 0.0), until)
            if len(paused) > 1000:  # forget pauses that are over
                for key in [c for c, t in paused.items() if t <= now]:
                    del paused[key]
            recent = [t for t in self._posts.get(channel, ()) if t > now - WINDOW]
            if len(recent) >= CHANNEL_BURST:
                return  # we did post there a lot: the channel's own limit
            if self._method_until.get(method, 0.0) <= now:
                # once per pause: the other 429s of this pause were already on their way
                self._spacing[method] = min(
                    MAX_SPACING, max(MIN_SPACING * 2, self._spacing.get(method, 0.0) * 2)
                )
        self._method_until[method] = max(self._method_until.get(method, 0.0), until)
