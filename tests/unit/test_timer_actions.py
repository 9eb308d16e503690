"""What each kind of timer does is a table its owner builds and passes in: no module keeps a
registry that one test (or one Runtime) could change under another."""

from __future__ import annotations

import handlers.timers
from bot.config import Settings
from bot.runtime import Runtime
from handlers.digest.send import DIGEST_TIMER
from handlers.timers import lifecycle_actions


def test_no_module_level_mutable_registry():
    mutable = [
        name
        for name, value in vars(handlers.timers).items()
        if isinstance(value, dict | list | set) and not name.startswith("__")
    ]
    assert mutable == []


def test_each_runtime_builds_its_own_timer_table(tmp_path):
    build = [
        Runtime.build(Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp_path}/{i}.db"}))
        for i in range(2)
    ]
    first, second = (r.timer_actions for r in build)
    assert first is not second
    assert DIGEST_TIMER in first and DIGEST_TIMER in second
    assert first[DIGEST_TIMER] is not second[DIGEST_TIMER]
    assert DIGEST_TIMER not in lifecycle_actions()  # the digest is the runtime's to add
