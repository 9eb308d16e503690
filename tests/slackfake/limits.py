"""Slack's posting limits, as the fake enforces them: chat.postMessage allows about one
message per second per channel, with short bursts, and several hundred a minute per
workspace. Both are token buckets; beyond them the fake answers 429 with Retry-After.

Off by default, so tests that do not care are not slowed. Turn them on with constructor
arguments (`FakeSlackAPI(post_rate=1.0, post_burst=3, workspace_rate=10.0)`) or, for a
fake built elsewhere (a bench), the environment: SLACKFAKE_POST_RATE, SLACKFAKE_POST_BURST,
SLACKFAKE_WORKSPACE_RATE, SLACKFAKE_WORKSPACE_BURST.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    rate: float  # tokens per second
    burst: float  # bucket size
    tokens: float = -1.0
    at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.burst

    def take(self, now: float) -> float:
        """Take a token: 0.0 when one was there, else the seconds until there is one."""
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


def _env_float(name: str) -> float | None:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else None


class PostLimits:
    """Per-channel and workspace-wide buckets for chat.postMessage."""

    def __init__(
        self,
        *,
        post_rate: float | None = None,
        post_burst: float | None = None,
        workspace_rate: float | None = None,
        workspace_burst: float | None = None,
    ) -> None:
        self.post_rate = post_rate if post_rate is not None else _env_float("SLACKFAKE_POST_RATE")
        self.post_burst = (
            post_burst if post_burst is not None else _env_float("SLACKFAKE_POST_BURST") or 3.0
        )
        self.workspace_rate = (
            workspace_rate if workspace_rate is not None else _env_float("SLACKFAKE_WORKSPACE_RATE")
        )
        burst = (
            workspace_burst
            if workspace_burst is not None
            else _env_float("SLACKFAKE_WORKSPACE_BURST")
        )
        self.workspace_burst = burst or max(1.0, (self.workspace_rate or 0.0) * 2)
        self._channels: dict[str, TokenBucket] = {}
        self._workspace = (
            TokenBucket(self.workspace_rate, self.workspace_burst) if self.workspace_rate else None
        )

    def retry_after(self, channel: str) -> int | None:
        """None when a message to `channel` may go now, else the Retry-After to answer."""
        now = time.monotonic()
        if self._workspace is not None:
            wait = self._workspace.take(now)
            if wait:
                return max(1, math.ceil(wait))
        if self.post_rate:
            bucket = self._channels.setdefault(
                channel, TokenBucket(self.post_rate, self.post_burst, at=now)
            )
            wait = bucket.take(now)
            if wait:
                if self._workspace is not None:
                    self._workspace.tokens += 1.0  # give the workspace token back
                return max(1, math.ceil(wait))
        return None
