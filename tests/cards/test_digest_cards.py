"""The digest and alert cards: valid Block Kit and Adaptive Cards 1.4, within each platform's
limits, user text shown as typed, and a terminal table that lines up."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest

from cards import slack, teams, text
from cards import views as v
from cards.views import AlertLine, DigestView, Figure, Notification, Ranked
from tests.cards.helpers import check_card, check_message, mrkdwn_texts, walk_of

SLACK_HOSTILE = "<!channel> & <https://evil|click>"
TEAMS_HOSTILE = "[click](https://evil) **bold** <b>x</b> {{DATE(2026-01-01T00:00:00Z)}}"

FULL = DigestView(
    title="PIM digest · 2 – 9 Mar 2026",
    period_start="2026-03-02T08:00:00+00:00",
    period_end="2026-03-09T08:00:00+00:00",
    timezone="Europe/Berlin",
    tiles=(
        Figure("Activations", 12, 9),
        Figure("Assignments made permanent", 0, 2),
        Figure("Eligible assignments made", 4, 4),
        Figure("Active assignments outside PIM", 1, None),
    ),
    approvals=(
        Figure("Requests needing approval", 8, 6),
        Figure("Approved", 6, 6),
        Figure("Denied", 1, 0),
        Figure("Timed out", 1, 0),
        Figure("Canceled", 0, 0),
        Figure("Median time to decision", 1200, 3600, unit="s"),
        Figure("90th percentile time to decision", None, None, unit="s"),
    ),
    daily_activations=(1, 0, 3, 5, 2, 0, 1),
    top_roles=(Ranked("Global Administrator", "12"), Ranked(SLACK_HOSTILE, "3")),
    slowest_approvers=(Ranked("Carol Chen", "3h20m"),),
    after_hours=Figure("Activations outside working hours", 3, 1),
    longest_activations=(Ranked(f"Bob Builder · {TEAMS_HOSTILE}", "8h"),),
    frequent_activators=(Ranked("Bob Builder", "7"), Ranked("Dave Duty", "2")),
    ending_soon=(Ranked("Dave Duty · Billing Administrator (eligible)", "2026-03-15"),),
    alerts=(
        AlertLine(
            "permanent_holders:global-admin",
            "high",
            "4 people hold Global Administrator permanently (more than 2).",
        ),
        AlertLine("stale:dave", "medium", f"Dave has not activated {SLACK_HOSTILE}."),
        AlertLine("unchecked:quick", "low", f"Quick needs no approval {TEAMS_HOSTILE}."),
    ),
)
EMPTY = DigestView(
    title="PIM digest", period_start=FULL.period_start, period_end=FULL.period_end, timezone="UTC"
)
HUGE = replace(
    FULL,
    top_roles=tuple(Ranked(f"Role {'x' * 300} {i}", str(i)) for i in range(60)),
    frequent_activators=tuple(Ranked(f"Person {i} " + "y" * 400, "9") for i in range(60)),
    daily_activations=tuple(range(92)),
    alerts=tuple(
        AlertLine(f"code{i}", "high", f"Alert number {i}: " + "z" * 480) for i in range(200)
    ),
)
DIGEST_NOTE = Notification(
    kind=v.DIGEST, headline="PIM digest for Mon 2 Mar – Mon 9 Mar 2026", digest=FULL
)
ALERT_NOTE = Notification(
    kind=v.ALERT,
    headline=f"Too many admins {SLACK_HOSTILE}",
    details=("high · permanent_holders:global-admin",),
)


def fields(message: dict[str, Any]) -> list[str]:
    return [f["text"] for b in message["blocks"] for f in b.get("fields", [])]


def contexts(message: dict[str, Any]) -> list[str]:
    return [e["text"] for b in message["blocks"] if b["type"] == "context" for e in b["elements"]]


# --- shared pieces -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "line"),
    [
        ((), ""),
        ((0, 0, 0), "▁▁▁"),
        ((1, 0, 3, 5, 2, 0, 1), "▃▁▆█▄▁▃"),
        ((7,), "█"),
        ((1, 100), "▂█"),  # a little is still more than nothing
    ],
)
def test_sparkline(values: tuple[int, ...], line: str) -> None:
    assert text.sparkline(values) == line


@pytest.mark.parametrize(
    ("fig", "change", "arrow"),
    [
        (Figure("a", 12, 9), "+3", "▲3"),
        (Figure("a", 0, 2), "−2", "▼2"),
        (Figure("a", 4, 4), "=", "="),
        (Figure("a", 1, None), "", ""),
        (Figure("a", 1200, 3600, unit="s"), "−40m", "▼40m"),
        (Figure("a", 2.5, 1, unit="%"), "+1.5 pts", "▲1.5 pts"),
    ],
)
def test_change_against_the_previous_period(fig: Figure, change: str, arrow: str) -> None:
    assert text.change(fig) == change and text.arrow(fig) == arrow


def test_the_digest_survives_the_outbox_round_trip() -> None:
    back = Notification.from_dict(json.loads(json.dumps(DIGEST_NOTE.to_dict())))
    assert back == DIGEST_NOTE
    assert slack.notification_message(back) == slack.notification_message(DIGEST_NOTE)


# --- terminal ----------------------------------------------------------------------------------


def test_text_digest_has_aligned_tables_tiles_sparkline_lists_and_alerts() -> None:
    out = text.render(FULL)
    lines = out.splitlines()
    assert lines[1] == "  Mon 2 Mar 09:00 → Mon 9 Mar 2026 09:00 (Europe/Berlin)"
    assert lines[3].split() == ["now", "before", "change"]
    tiles = lines[4:8]
    assert [re.split(r"\s{2,}", t.strip()) for t in tiles] == [
        ["Activations", "12", "9", "+3"],
        ["Assignments made permanent", "0", "2", "−2"],
        ["Eligible assignments made", "4", "4", "="],
        ["Active assignments outside PIM", "1", "—"],
    ]
    # columns line up: every number of the "now" column ends in the same place
    now_ends = {
        line.index(value) + len(value)
        for line, value in zip(tiles, ["12", "0", "4", "1"], strict=True)
    }
    assert len(now_ends) == 1
    assert "Activations per day  ▃▁▆█▄▁▃  7 days, peak 5/day" in out
    assert "Median time to decision" in out and "20m" in out and "−40m" in out
    assert "1. Global Administrator" in out and f"2. {SLACK_HOSTILE}" in out
    assert "‼ high    4 people hold Global Administrator permanently" in out
    assert "audit" in lines[-1]


def test_text_of_a_digest_notification_and_an_alert() -> None:
    assert text.render(DIGEST_NOTE).startswith(f"📊 {DIGEST_NOTE.headline}\n")
    assert text.render(ALERT_NOTE).splitlines()[:2] == [
        f"🚨 {ALERT_NOTE.headline}",
        "  high · permanent_holders:global-admin",
    ]
    assert "No alerts." in text.render(EMPTY)


# --- Slack -------------------------------------------------------------------------------------


def test_slack_digest_reads_in_ten_seconds() -> None:
    message = check_message(slack.notification_message(DIGEST_NOTE))
    blocks = message["blocks"]
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": f"📊 {FULL.title}", "emoji": True},
    }
    assert fields(message)[:4] == [
        "Activations *12* (▲3)",
        "Assignments made permanent *0* (▼2)",
        "Eligible assignments made *4* (=)",
        "Active assignments outside PIM *1*",
    ]
    assert "Activations per day `▃▁▆█▄▁▃  7 days, peak 5/day`" in contexts(message)
    assert "Median time to decision *20m* (▼40m)" in fields(message)
    assert any(
        f.startswith("*Top roles") and "1. Global Administrator — 12" in f for f in fields(message)
    )
    alerts = next(
        b["text"]["text"]
        for b in blocks
        if b["type"] == "section" and "text" in b and "*Alerts*" in b["text"]["text"]
    )
    assert (
        alerts.splitlines()[1] == "🔴 4 people hold Global Administrator permanently (more than 2)."
    )
    assert "`/pim audit`" in contexts(message)[-1]
    assert message["text"].startswith(f"📊 {DIGEST_NOTE.headline}: Activations 12 (▲3)")
    assert len(blocks) <= 15  # compact


def test_slack_digest_escapes_what_people_typed() -> None:
    shown = "\n".join(mrkdwn_texts(slack.notification_message(DIGEST_NOTE)))
    assert SLACK_HOSTILE not in shown and slack.escape(SLACK_HOSTILE) in shown


@pytest.mark.parametrize("view", [FULL, EMPTY, HUGE], ids=["full", "empty", "huge"])
def test_slack_digest_stays_within_block_kit_limits(view: DigestView) -> None:
    for message in (
        slack.notification_message(replace(DIGEST_NOTE, digest=view)),
        slack.reply_message(view),
    ):
        check_message(message)
        assert len(message["blocks"]) <= 50
        for block in message["blocks"]:
            assert len(block.get("fields", [])) <= 10
            assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))
            if "text" in block:
                assert len(block["text"]["text"]) <= 3000
        assert len(message["text"]) <= 3000


def test_slack_huge_digest_says_what_it_left_out() -> None:
    message = slack.notification_message(replace(DIGEST_NOTE, digest=HUGE))
    assert re.search(r"…and \d+ more alerts\.", "\n".join(mrkdwn_texts(message)))


def test_slack_alert_message() -> None:
    message = check_message(slack.notification_message(ALERT_NOTE))
    assert message["blocks"][0]["text"]["text"] == "🚨 PIM alert"
    assert (
        message["blocks"][1]["text"]["text"] == f"🔴 Too many admins {slack.escape(SLACK_HOSTILE)}"
    )
    assert "`/pim audit`" in contexts(message)[-1]


def test_slack_reply_to_pim_digest_is_the_digest() -> None:
    reply = check_message(slack.reply_message(FULL))
    assert reply["blocks"] == slack.notification_message(DIGEST_NOTE)["blocks"]


# --- Teams -------------------------------------------------------------------------------------


def test_teams_digest_has_fact_sets_a_monospace_sparkline_and_alerts() -> None:
    card = check_card(teams.notification_card(DIGEST_NOTE))
    assert card["version"] == "1.4" and "actions" not in card
    fact_sets = [b for b in card["body"] if b["type"] == "FactSet"]
    assert fact_sets[0]["facts"][:3] == [
        {"title": "Activations", "value": "12 (▲3)"},
        {"title": "Assignments made permanent", "value": "0 (▼2)"},
        {"title": "Eligible assignments made", "value": "4 (=)"},
    ]
    spark = [b for b in card["body"] if b.get("fontType") == "monospace"]
    assert spark and spark[0]["text"].startswith("▃▁▆█▄▁▃")
    walk = walk_of(card)
    assert "🔴 4 people hold Global Administrator permanently (more than 2)." in walk.runs
    high = next(
        b
        for b in card["body"]
        if b["type"] == "RichTextBlock" and b["inlines"][0]["text"].startswith("🔴")
    )
    assert high["inlines"][0]["color"] == "attention"
    assert "audit" in card["body"][-1]["text"]


def test_teams_alert_card_shows_user_text_literally() -> None:
    note = replace(ALERT_NOTE, headline=f"Too many admins {TEAMS_HOSTILE}")
    card = check_card(teams.notification_card(note))
    assert card["body"][0]["text"] == "🚨 PIM alert"
    assert any("[click](https://evil)" in run for run in walk_of(card).runs)


@pytest.mark.parametrize("view", [FULL, EMPTY, HUGE], ids=["full", "empty", "huge"])
def test_teams_digest_is_a_valid_card_within_the_size_limit(view: DigestView) -> None:
    check_card(teams.notification_card(replace(DIGEST_NOTE, digest=view)))
    check_card(teams.reply_card(view))


def test_teams_huge_digest_says_what_it_left_out() -> None:
    card = teams.notification_card(replace(DIGEST_NOTE, digest=HUGE))
    assert any(re.match(r"…and \d+ more alerts\.", b.get("text", "")) for b in card["body"])


# --- the audit checkpoint in the footer --------------------------------------------------------

CHECKPOINT = "audit-checkpoint seq=57 hash=" + "9f" * 32 + " key=0123456789abcdef"


@pytest.mark.parametrize("view", [FULL, EMPTY, HUGE], ids=["full", "empty", "huge"])
def test_every_digest_surface_shows_the_audit_checkpoint_last(view: DigestView) -> None:
    view = replace(view, checkpoint=CHECKPOINT)
    note = replace(DIGEST_NOTE, digest=view)
    assert text.render(view).splitlines()[-1] == f"Audit checkpoint (keep a copy): {CHECKPOINT}"

    message = check_message(slack.notification_message(note))
    assert contexts(message)[-1] == f"Audit checkpoint (keep a copy): `{CHECKPOINT}`"
    assert len(message["blocks"]) <= 50

    for card in (teams.notification_card(note), teams.reply_card(view)):
        check_card(card)
        footer = card["body"][-1]
        assert footer["text"] == f"Audit checkpoint (keep a copy): {CHECKPOINT}"
        assert (footer["isSubtle"], footer["size"], footer["fontType"]) == (
            True,
            "small",
            "monospace",
        )
        assert "audit" in card["body"][-2]["text"]  # the "More:" line stays just above it


def test_the_checkpoint_survives_the_outbox_round_trip() -> None:
    note = replace(DIGEST_NOTE, digest=replace(FULL, checkpoint=CHECKPOINT))
    assert Notification.from_dict(json.loads(json.dumps(note.to_dict()))) == note


def test_a_huge_teams_digest_still_fits_with_the_checkpoint() -> None:
    card = teams.notification_card(
        replace(DIGEST_NOTE, digest=replace(HUGE, checkpoint=CHECKPOINT))
    )
    assert len(json.dumps(card).encode()) <= teams.CARD_BUDGET
    assert any(re.match(r"…and \d+ more alerts\.", b.get("text", "")) for b in card["body"])
