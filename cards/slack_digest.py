"""Slack Block Kit for the PIM digest and for a PIM alert on its own.

    digest_message(view, headline=None) -> dict   {"text", "blocks"}: tiles, activity per day,
                                                  approvals, ranked lists, alerts
    alert_message(note) -> dict                   {"text", "blocks"} for one high alert

Import them from cards.slack, which re-exports them and dispatches notifications of kinds
DIGEST and ALERT here. This module builds on the pieces in cards.slack_modals and imports
nothing from cards.slack.
"""

from __future__ import annotations

from cards import text as plain_text
from cards import views as v
from cards.slack_modals import (
    FIELD_TEXT,
    SECTION_TEXT,
    Block,
    context,
    esc,
    escape,
    header,
    message,
    mrkdwn,
    section,
)
from cards.views import Notification

__all__ = ["LIST_MAX", "MORE", "SECTION_FIELDS", "alert_message", "digest_message"]

SECTION_FIELDS = 10
_ALERT_ICON = {"high": "🔴", "medium": "🟠", "low": "🟡"}
MORE = "More: `/pim audit` shows the audit trail · `/pim digest` previews this any time."
LIST_MAX = 10  # per ranked list: 10 lines of at most ~210 characters fit a field


def _fields(texts: list[str]) -> list[Block]:
    """Sections of up to ten fields each (Slack shows them two to a row)."""
    return [
        {
            "type": "section",
            "fields": [mrkdwn(t, FIELD_TEXT) for t in texts[i : i + SECTION_FIELDS]],
        }
        for i in range(0, len(texts), SECTION_FIELDS)
    ]


def _figure_field(fig: v.Figure) -> str:
    moved = plain_text.arrow(fig)
    return f"{esc(fig.label, 200)} *{plain_text.figure_value(fig)}*" + (
        f" ({moved})" if moved else ""
    )


def _ranked_field(title: str, items: tuple[v.Ranked, ...]) -> str:
    lines = [f"*{esc(title, 200)}*"]
    lines += [
        f"{i}. {esc(r.label, 150)} — {esc(r.value, 50)}" for i, r in enumerate(items[:LIST_MAX], 1)
    ]
    if len(items) > LIST_MAX:
        lines.append(f"…and {len(items) - LIST_MAX} more.")
    return "\n".join(lines)


def _alert_lines(alerts: tuple[v.AlertLine, ...]) -> str:
    lines, used = ["*Alerts*"], 0
    for a in alerts:
        line = f"{_ALERT_ICON.get(a.severity, '⚪')} {esc(a.text, 500)}"
        if sum(len(x) + 1 for x in lines) + len(line) > SECTION_TEXT - 40:
            break
        lines.append(line)
        used += 1
    if used < len(alerts):
        lines.append(f"…and {len(alerts) - used} more alerts.")
    return "\n".join(lines) if alerts else "*Alerts*\nNo alerts. ✅"


def digest_message(view: v.DigestView, headline: str | None = None) -> Block:
    """The digest in ten seconds: Entra's four tiles, activity per day, approvals, who and
    what stands out, alerts, and where to read more."""
    blocks: list[Block] = [
        header(f"📊 {view.title}"),
        context(esc(plain_text.period_label(view), 500)),
    ]
    blocks += _fields([_figure_field(f) for f in view.tiles])
    if view.daily_activations:
        blocks.append(context(f"Activations per day `{plain_text.daily_label(view)}`"))
    approvals = list(view.approvals) + ([view.after_hours] if view.after_hours else [])
    if approvals:
        blocks += [
            {"type": "divider"},
            section("*Approvals and activity*"),
            *_fields([_figure_field(f) for f in approvals]),
        ]
    lists = plain_text.digest_lists(view)
    if lists:
        blocks += [
            {"type": "divider"},
            *_fields([_ranked_field(title, items) for title, items in lists]),
        ]
    blocks += [{"type": "divider"}, section(_alert_lines(view.alerts)), context(MORE)]
    if view.checkpoint:
        blocks.append(context(f"Audit checkpoint (keep a copy): `{esc(view.checkpoint, 200)}`"))
    tiles = " · ".join(_figure_field(f).replace("*", "") for f in view.tiles)
    return message(f"📊 {escape(headline or view.title)}" + (f": {tiles}" if tiles else ""), blocks)


def alert_message(note: Notification) -> Block:
    """A new high-severity PIM alert, on its own."""
    blocks = [header("🚨 PIM alert"), section(f"🔴 {esc(note.headline)}")]
    if note.details:
        blocks.append(context("\n".join(esc(d, 500) for d in note.details)))
    blocks.append(context(MORE))
    return message(f"🚨 {escape(note.headline)}", blocks)
