"""A 429 pauses only what Slack limited: one channel's posts, or posting as a whole when the
refused channel cannot be limited itself (the workspace's limit), then spaced-out posts."""

from __future__ import annotations

from bot.slack.pacing import Pacer

POST = "chat.postMessage"


class Ticks:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_429_on_a_busy_channel_pauses_that_channel_only():
    now = Ticks()
    pacer = Pacer(now=now)
    for _ in range(2):
        pacer.went_through(POST, "C0APPROVALS")
    pacer.limited(POST, "C0APPROVALS", 2.0)
    assert pacer.wait(POST, "C0APPROVALS") == 2.0
    assert pacer.reserve(POST, "D0CAROL") == 0.0  # and no spacing for anyone else
    assert pacer.wait("chat.update", "C0APPROVALS") == 0.0
    now.t += 2.0
    assert pacer.wait(POST, "C0APPROVALS") == 0.0


def test_a_429_on_a_quiet_channel_is_the_workspace_limit_posts_wait_then_go_spaced():
    now = Ticks()
    pacer = Pacer(now=now)
    pacer.limited(POST, "D0FIRST_TIME", 1.0)
    assert pacer.wait(POST, "D0SOMEONE_ELSE") == 1.0
    assert pacer.wait("views.publish") == 0.0
    now.t += 1.0
    turns = [pacer.reserve(POST, f"D{i}") for i in range(3)]
    assert turns[0] == 0.0 and 0.0 < turns[1] < turns[2]  # one after the other
    for _ in range(500):  # posts that go through relax the spacing away
        pacer.went_through(POST, "D0X")
    now.t += 10
    assert pacer.reserve(POST, "D0Y") == 0.0 and pacer.reserve(POST, "D0Z") == 0.0


def test_other_methods_are_limited_per_workspace():
    pacer = Pacer(now=Ticks())
    pacer.limited("views.publish", "", 30.0)
    assert pacer.wait("views.publish") == 30.0
    assert pacer.wait(POST, "D0BOB") == 0.0
