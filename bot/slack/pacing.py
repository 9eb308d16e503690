"""Slack's rate limits as this process has met them. A 429 pauses what it names and nothing
else: chat.postMessage is limited per channel (about one a second, with bursts), every other
method per workspace. When posts to several channels are refused within one Retry-After, the
limit is the workspace's, and posting pauses as a whole, so we do not hammer Slack."""

from __future__ import annotations

import time
from collections.abc import Callable

CHANNEL_SCOPED = frozenset({"chat.postMessage"})
# 429s on this many different channels, each still paused: the workspace's limit, not theirs.
WORKSPACE_SPREAD = 3


class Pacer:
    def __init__(self, *, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._method_until: dict[str, float] = {}
        self._channel_until: dict[str, dict[str, float]] = {}

    def wait(self, method: str, channel: str = "") -> float:
        """Seconds before `method` may be called (for `channel`): 0.0 when it may now."""
        until = self._method_until.get(method, 0.0)
        if channel:
            until = max(until, self._channel_until.get(method, {}).get(channel, 0.0))
        return max(0.0, until - self._now())

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
            if sum(1 for t in paused.values() if t > now) < WORKSPACE_SPREAD:
                return
        self._method_until[method] = max(self._method_until.get(method, 0.0), until)
