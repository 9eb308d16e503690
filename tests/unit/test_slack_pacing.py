"""A 429 pauses only what Slack limited: one channel's posts, or a whole method once posts to
several channels are refused (the workspace's limit), never anything else."""

from __future__ import annotations

from bot.slack.pacing import WORKSPACE_SPREAD, Pacer


class Ticks:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_429_on_one_channel_pauses_that_channel_only():
    now = Ticks()
    pacer = Pacer(now=now)
    pacer.limited("chat.postMessage", "D0BOB", 2.0)
    assert pacer.wait("chat.postMessage", "D0BOB") == 2.0
    assert pacer.wait("chat.postMessage", "D0CAROL") == 0.0
    assert pacer.wait("chat.update", "D0BOB") == 0.0
    now.t += 2.0
    assert pacer.wait("chat.postMessage", "D0BOB") == 0.0


def test_429s_on_several_channels_pause_posting_as_a_whole():
    now = Ticks()
    pacer = Pacer(now=now)
    for i in range(WORKSPACE_SPREAD):
        pacer.limited("chat.postMessage", f"D{i}", 5.0)
    assert pacer.wait("chat.postMessage", "D0SOMEONE_ELSE") == 5.0
    assert pacer.wait("views.publish") == 0.0
    now.t += 5.0
    assert pacer.wait("chat.postMessage", "D0SOMEONE_ELSE") == 0.0


def test_other_methods_are_limited_per_workspace():
    pacer = Pacer(now=Ticks())
    pacer.limited("views.publish", "", 30.0)
    assert pacer.wait("views.publish") == 30.0
    assert pacer.wait("chat.postMessage", "D0BOB") == 0.0
