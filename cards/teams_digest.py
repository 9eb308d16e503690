"""Teams Adaptive Cards for the PIM digest and for a PIM alert on its own.

    digest_card(view, headline=None) -> dict   tiles, activity per day, approvals, ranked
                                               lists and alerts, within CARD_BUDGET
    alert_card(note) -> dict                   one high-severity alert

Import them from cards.teams, which re-exports them and dispatches notifications of kinds
DIGEST and ALERT (and a DigestView reply) here. This module builds on the pieces in
cards.teams_forms and imports nothing from cards.teams.
"""

from __future__ import annotations

from cards import text as plain_text
from cards import views as v
from cards.teams_forms import (
    FACT_MAX,
    Element,
    card,
    esc,
    escape,
    facts,
    fit,
    heading,
    hint,
    literal,
    text_block,
)
from cards.views import Notification

__all__ = ["LABEL_MAX", "LIST_MAX", "MORE", "alert_card", "digest_card"]

_ALERT_COLOUR = {"high": "attention", "medium": "warning"}
_ALERT_ICON = {"high": "🔴", "medium": "🟠", "low": "🟡"}
MORE = "More: send audit to pim-bot for the audit trail; digest previews this any time."
LIST_MAX, LABEL_MAX = 10, 200  # per ranked list, so the alerts keep most of the card


def _figure_fact(fig: v.Figure) -> tuple[str, str]:
    moved = plain_text.arrow(fig)
    value = plain_text.figure_value(fig) + (f" ({moved})" if moved else "")
    return esc(fig.label, FACT_MAX) or "—", esc(value, FACT_MAX)


def _section(title: str) -> Element:
    return text_block(escape(title), weight="bolder", spacing="medium")


def digest_card(view: v.DigestView, headline: str | None = None) -> Element:
    """The digest in ten seconds: Entra's four tiles, activity per day (a monospace
    sparkline), approvals, who and what stands out, alerts, and where to read more."""
    body = [heading(f"📊 {escape(view.title)}"), hint(escape(plain_text.period_label(view)))]
    if view.tiles:
        body.append(facts([_figure_fact(f) for f in view.tiles]))
    if view.daily_activations:
        body += [
            _section("Activations per day"),
            text_block(escape(plain_text.daily_label(view)), fontType="monospace", spacing="none"),
        ]
    approvals = list(view.approvals) + ([view.after_hours] if view.after_hours else [])
    if approvals:
        body += [_section("Approvals and activity"), facts([_figure_fact(f) for f in approvals])]
    for title, items in plain_text.digest_lists(view):
        body += [
            _section(title),
            facts(
                [
                    (esc(f"{i}. {r.label}", LABEL_MAX), esc(r.value, 100) or "—")
                    for i, r in enumerate(items[:LIST_MAX], 1)
                ]
            ),
        ]
        if len(items) > LIST_MAX:
            body.append(hint(f"…and {len(items) - LIST_MAX} more."))
    body.append(_section("Alerts"))
    alerts = [
        literal(
            f"{_ALERT_ICON.get(a.severity, '⚪')} {a.text}",
            FACT_MAX,
            **({"color": _ALERT_COLOUR[a.severity]} if a.severity in _ALERT_COLOUR else {}),
        )
        for a in view.alerts
    ]
    footer = [hint(MORE)]
    if view.checkpoint:
        footer.append(
            text_block(
                escape(plain_text.checkpoint_note(view)),
                isSubtle=True,
                size="small",
                spacing="none",
                fontType="monospace",
            )
        )
    # The footer counts against the budget, then goes after the alerts that fit.
    fitted, left = fit(body + footer, alerts) if alerts else (body + footer, 0)
    shown = body + fitted[len(body) + len(footer) :]
    if not alerts:
        shown.append(literal("No alerts. ✅"))
    if left:
        shown.append(hint(f"…and {left} more alerts."))
    return card([*shown, *footer])


def alert_card(note: Notification) -> Element:
    """A new high-severity PIM alert, on its own."""
    body = [heading("🚨 PIM alert"), literal(f"🔴 {note.headline}", color="attention")]
    body += [literal(d, FACT_MAX, isSubtle=True, spacing="small") for d in note.details]
    return card([*body, hint(MORE)])
