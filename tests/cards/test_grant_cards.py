"""What a user reads about their grants, on every surface: the activation notice says where the
access is being provisioned, then "active in …" or "failed: …"."""

from __future__ import annotations

import json

import pytest

from cards import slack, teams, text
from cards import views as v
from cards.views import Notification, RoleRef

ROLE = RoleRef(id="global-admin", name="Global Administrator")
NOTES = [
    (
        Notification(
            kind=v.ACTIVATED,
            role=ROLE,
            end_at="2026-11-27T10:00:00+00:00",
            headline="Global Administrator is active until 2026-11-27 10:00 UTC.",
            details=("Entra: provisioning…",),
        ),
        ["Entra: provisioning…"],
    ),
    (
        Notification(
            kind=v.GRANT_STATUS, role=ROLE, headline="Global Administrator is active in Entra."
        ),
        ["Global Administrator is active in Entra."],
    ),
    (
        Notification(
            kind=v.GRANT_FAILED,
            role=ROLE,
            headline="Global Administrator in Entra: failed: HTTP 403 <b>",
            details=("granting entra_role 62e9… at /; the admins are told.",),
        ),
        ["failed: HTTP 403", "the admins are told"],
    ),
]


@pytest.mark.parametrize(("note", "expected"), NOTES)
def test_every_surface_shows_the_grant_status(note: Notification, expected: list[str]):
    surfaces = {
        "console": text.render(note),
        "slack": json.dumps(slack.notification_message(note), ensure_ascii=False),
        "teams": json.dumps(teams.notification_card(note), ensure_ascii=False),
    }
    for name, shown in surfaces.items():
        for words in expected:
            assert words in shown, (name, shown)
    assert "<b>" not in surfaces["slack"]  # user-facing error text is escaped for mrkdwn
