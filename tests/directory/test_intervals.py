"""PIM_RECONCILE_INTERVAL and PIM_DIRECTORY_SYNC_INTERVAL: durations as people write them, a
one-line refusal otherwise, and periods every replica names the same way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.config import ConfigError, Settings
from handlers.periodic import period_key, period_start


def test_defaults_and_durations():
    settings = Settings.from_env({})
    assert (settings.reconcile_interval, settings.directory_sync_interval) == (
        timedelta(minutes=15),
        timedelta(hours=1),
    )
    chosen = Settings.from_env(
        {"PIM_RECONCILE_INTERVAL": "5m", "PIM_DIRECTORY_SYNC_INTERVAL": "PT2H"}
    )
    assert (chosen.reconcile_interval, chosen.directory_sync_interval) == (
        timedelta(minutes=5),
        timedelta(hours=2),
    )


@pytest.mark.parametrize("value", ["soon", "-5m", "0s"])
def test_a_bad_interval_is_refused_in_one_line(value):
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"PIM_RECONCILE_INTERVAL": value})
    assert str(err.value).startswith("PIM_RECONCILE_INTERVAL")
    assert "\n" not in str(err.value)


def test_every_replica_names_the_same_period():
    every = timedelta(minutes=15)
    early = datetime(2026, 11, 30, 14, 0, 1, tzinfo=UTC)
    late = datetime(2026, 11, 30, 14, 14, 59, tzinfo=UTC)
    assert period_start(early, every) == period_start(late, every) == early.replace(second=0)
    assert period_key("reconcile", period_start(late + timedelta(seconds=1), every)) == (
        "reconcile:2026-11-30T14:15:00+00:00"
    )
