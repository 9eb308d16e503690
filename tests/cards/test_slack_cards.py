"""Slack cards: every renderer's output passes slack_sdk's Block Kit validators, stays within
Slack's limits, escapes user text, and shows people what they need to act.

Snapshots live in tests/cards/snapshots/; regenerate them with UPDATE_SNAPSHOTS=1.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cards import slack
from cards import views as v
from cards.views import (
    AuditLine,
    AuditView,
    Decision,
    FormView,
    Notification,
    Person,
    Reply,
    RequestListView,
    RequestView,
    RoleLine,
    RoleRef,
    RolesView,
)
from tests.cards.helpers import actions_of, check_message, check_view, mrkdwn_texts, shown

SNAPSHOTS = Path(__file__).parent / "snapshots"
HOSTILE = "<!channel> & <https://evil|click>"
ESCAPED = "&lt;!channel&gt; &amp; &lt;https://evil|click&gt;"

ASKED = "2026-03-02T09:00:00+00:00"
DEADLINE = "2026-03-03T09:00:00+00:00"
DECIDED = "2026-03-02T09:20:00+00:00"
BOB = Person(email="bob@contoso.com", name="Bob Builder")
CAROL = Person(email="carol@contoso.com", name="Carol Chen")
GA = RoleRef(id="global-admin", name="Global Administrator")
HELPDESK = RoleRef(id="helpdesk-admin", name="Helpdesk Administrator")

PENDING = RequestView(
    id="R-7K2Q",
    status="PendingApproval",
    action="selfActivate",
    requester=BOB,
    role=GA,
    duration_seconds=7200,
    start_at=ASKED,
    created_at=ASKED,
    justification=HOSTILE,
    ticket="INC0012345",
    deadline=DEADLINE,
)
APPROVED = replace(
    PENDING,
    status="Provisioned",
    decision=Decision(by=CAROL, outcome="Granted", at=DECIDED, reason="Change CHG-9 is approved"),
)
DENIED = replace(
    PENDING,
    status="Denied",
    decision=Decision(
        by=CAROL, outcome="Denied", at=DECIDED, reason="Use the <#C0OPS|ops> runbook instead"
    ),
)
TIMED_OUT = replace(
    PENDING, status="TimedOut", decision=Decision(by=None, outcome="TimedOut", at=DEADLINE)
)
CANCELED = replace(
    PENDING, status="Canceled", decision=Decision(by=BOB, outcome="Canceled", at=DECIDED)
)


def note(kind: str, request: RequestView | None = PENDING, **kw: Any) -> Notification:
    headline = kw.pop("headline", f"{kind} headline")
    return Notification(kind=kind, headline=headline, request=request, role=GA, **kw)


def role_line(i: int, **kw: Any) -> RoleLine:
    return RoleLine(
        role=RoleRef(id=f"role-{i}", name=f"Role number {i}"),
        max_duration_seconds=8 * 3600,
        requires_approval=i % 2 == 0,
        **kw,
    )


# --- escaping ----------------------------------------------------------------------------------


def test_escape_makes_mentions_and_links_inert() -> None:
    assert slack.escape(HOSTILE) == ESCAPED
    assert slack.escape("a && b") == "a &amp;&amp; b"


@pytest.mark.parametrize(
    "kind",
    [
        v.APPROVAL_NEEDED,
        v.REQUEST_UPDATE,
        v.SUBMITTED,
        v.APPROVED,
        v.DENIED,
        v.TIMED_OUT,
        v.CANCELED,
        v.ACTIVATED,
        v.EXPIRING,
        v.EXPIRED,
        v.DEACTIVATED,
        v.ASSIGNED,
        v.REMOVED,
    ],
)
def test_every_notification_kind_validates_and_escapes(kind: str) -> None:
    hostile = note(
        kind, headline=f"Bob says {HOSTILE}", end_at=DEADLINE, details=(f"note: {HOSTILE}",)
    )
    message = check_message(slack.notification_message(hostile))
    raw = json.dumps(message, ensure_ascii=False)
    assert "<!channel>" not in raw and "<https://evil" not in raw
    assert ESCAPED in shown(message)
    if kind != v.REQUEST_UPDATE:  # a redrawn card leads with its outcome, not the headline
        assert ESCAPED in message["text"]


def test_every_notification_kind_survives_the_outbox_round_trip() -> None:
    for kind in [v.APPROVAL_NEEDED, v.SUBMITTED, v.DENIED, v.EXPIRING]:
        original = note(kind, request=DENIED if kind == v.DENIED else PENDING)
        again = Notification.from_dict(json.loads(json.dumps(original.to_dict())))
        assert slack.notification_message(again) == slack.notification_message(original)


# --- the approval card -------------------------------------------------------------------------


def test_pending_card_shows_details_and_approve_deny_with_the_request_id() -> None:
    card = check_message(slack.notification_message(note(v.APPROVAL_NEEDED)))
    text = shown(card)
    for seen in [
        "Bob Builder",
        "bob@contoso.com",
        "Global Administrator",
        "2h",
        "INC0012345",
        "Decide by",
        "2026-03-03 09:00 UTC",
        ESCAPED,
    ]:
        assert seen in text
    assert "<!channel>" not in json.dumps(card)
    buttons = {b["action_id"]: b for b in actions_of(card)}
    assert set(buttons) == {v.APPROVE, v.DENY}
    assert buttons[v.APPROVE]["value"] == buttons[v.DENY]["value"] == "R-7K2Q"
    assert buttons[v.APPROVE]["style"] == "primary"
    assert buttons[v.DENY]["style"] == "danger"
    assert [b["block_id"] for b in card["blocks"] if b["type"] == "actions"] == ["req:R-7K2Q"]


@pytest.mark.parametrize(
    ("request_view", "emoji", "line"),
    [
        (
            APPROVED,
            "✅",
            "Approved by Carol Chen at 2026-03-02 09:20 UTC: Change CHG-9 is approved",
        ),
        (DENIED, "⛔", "Denied by Carol Chen at 2026-03-02 09:20 UTC: Use the &lt;#C0OPS|ops&gt;"),
        (TIMED_OUT, "⌛", "Timed out at 2026-03-03 09:00 UTC: nobody decided in time"),
        (CANCELED, "🚫", "Canceled by Bob Builder at 2026-03-02 09:20 UTC"),
    ],
)
def test_decided_card_has_no_buttons_and_says_who_when_why(
    request_view: RequestView, emoji: str, line: str
) -> None:
    for kind in (v.REQUEST_UPDATE, v.APPROVAL_NEEDED, v.SUBMITTED):
        card = check_message(slack.notification_message(note(kind, request=request_view)))
        assert not [b for b in card["blocks"] if b["type"] == "actions"]
        assert f"{emoji} {line}" in shown(card)
        assert card["blocks"][0]["text"]["text"].startswith(emoji)
        assert "Decide by" not in shown(card)
    assert slack.request_update_message(
        note(v.REQUEST_UPDATE, request=request_view)
    ) == slack.notification_message(note(v.REQUEST_UPDATE, request=request_view))


def test_submitted_message_has_a_cancel_button() -> None:
    message = check_message(slack.notification_message(note(v.SUBMITTED)))
    assert [(b["action_id"], b["value"]) for b in actions_of(message)] == [(v.CANCEL, "R-7K2Q")]
    assert "Cancel request" in shown(message)


def test_expiring_message_offers_extend_and_the_ended_one_request_again() -> None:
    message = check_message(
        slack.notification_message(note(v.EXPIRING, request=None, end_at=DEADLINE))
    )
    assert [(b["action_id"], b["value"]) for b in actions_of(message)] == [
        (v.EXTEND, "global-admin")
    ]
    assert "ends" in shown(message)
    ended = check_message(slack.notification_message(note(v.EXPIRED, request=None)))
    assert [(b["action_id"], b["value"]) for b in actions_of(ended)] == [
        (v.REQUEST_AGAIN, "global-admin")
    ]


def test_denied_message_to_the_requester_carries_the_reason() -> None:
    headline = f"Carol Chen denied R-7K2Q. Reason: {HOSTILE}"
    message = check_message(
        slack.notification_message(note(v.DENIED, request=DENIED, headline=headline))
    )
    assert f"Reason: {ESCAPED}" in message["text"]
    assert not actions_of(message)


def test_a_very_long_justification_is_shortened_and_still_valid() -> None:
    long = replace(PENDING, justification="<&>" * 1500 + "x" * 500)
    card = check_message(slack.notification_message(note(v.APPROVAL_NEEDED, request=long)))
    why = next(t for t in mrkdwn_texts(card) if t.startswith("*Justification*"))
    assert len(why) <= 3000 and why.endswith("…")


def test_unknown_kind_still_renders() -> None:
    check_message(slack.notification_message(note("something_new", request=None)))


# --- replies to /pim ---------------------------------------------------------------------------


def test_reply_ok_and_refusal_with_usage() -> None:
    ok = check_message(slack.reply_message(Reply(text=f"Done: {HOSTILE}")))
    assert ok["blocks"][0]["text"]["text"] == f"Done: {ESCAPED}"
    bad = check_message(
        slack.reply_message(
            Reply(text="Unknown role <x>", ok=False, usage="activate ROLE [DURATION] …")
        )
    )
    assert bad["blocks"][0]["text"]["text"] == "✗ Unknown role &lt;x&gt;"
    assert bad["blocks"][1]["type"] == "context"
    assert "activate ROLE [DURATION]" in bad["blocks"][1]["elements"][0]["text"]
    with_request = check_message(slack.reply_message(Reply(text="Sent.", request=PENDING)))
    assert "Global Administrator" in shown(with_request)


def test_roles_show_state_and_the_right_button() -> None:
    roles = RolesView(
        person=BOB,
        roles=(
            RoleLine(role=GA, max_duration_seconds=28800, requires_approval=True),
            RoleLine(
                role=HELPDESK,
                max_duration_seconds=14400,
                requires_approval=False,
                active_until=DEADLINE,
                active_since=ASKED,
                member_type="Activated",
            ),
            RoleLine(
                role=RoleRef("billing", "Billing Administrator"),
                max_duration_seconds=3600,
                requires_approval=True,
                pending_request="R-AAAA",
            ),
            RoleLine(
                role=RoleRef("reader", "Reader"),
                max_duration_seconds=3600,
                requires_approval=False,
                active_until="permanent",
                member_type="Assigned",
            ),
        ),
    )
    message = check_message(slack.reply_message(roles))
    assert [(b["action_id"], b["value"]) for b in actions_of(message)] == [
        (v.ACTIVATE, "global-admin"),
        (v.DEACTIVATE, "helpdesk-admin"),
    ]
    text = shown(message)
    for seen in [
        "max 8h · needs approval",
        "Active until",
        "Pending `R-AAAA`",
        "Active permanently (assigned)",
        "Eligible",
    ]:
        assert seen in text


def test_eighty_roles_fit_a_message_and_app_home() -> None:
    roles = RolesView(person=BOB, roles=tuple(role_line(i) for i in range(80)))
    message = check_message(slack.reply_message(roles))
    assert len(message["blocks"]) == 50
    assert "32 more roles not shown" in shown(message)
    empty = RequestListView(title="t", requests=(), for_approver=False, empty_text="None.")
    home = check_view(slack.home_view(roles, empty, replace(empty, for_approver=True)))
    assert len(home["blocks"]) <= 100
    assert len(actions_of(home)) == 80  # all 80 fit when the other lists are empty


def test_request_lists_have_cancel_or_approve_and_deny() -> None:
    mine = RequestListView(
        title="Your pending requests",
        requests=(PENDING,),
        for_approver=False,
        empty_text="You have no pending requests.",
    )
    message = check_message(slack.reply_message(mine))
    assert [(b["action_id"], b["value"]) for b in actions_of(message)] == [(v.CANCEL, "R-7K2Q")]
    assert ESCAPED in shown(message)
    other = replace(PENDING, id="R-8XYZ", requester=CAROL)
    approvals = replace(mine, requests=(PENDING, other), for_approver=True)
    message = check_message(slack.reply_message(approvals))
    assert [b["action_id"] for b in actions_of(message)] == [v.APPROVE, v.DENY] * 2
    assert [b["block_id"] for b in message["blocks"] if b["type"] == "actions"] == [
        "req:R-7K2Q",
        "req:R-8XYZ",
    ]
    empty = check_message(slack.reply_message(replace(mine, requests=())))
    assert shown(empty).startswith("You have no pending requests.")


def test_a_long_approval_list_is_capped_with_a_count() -> None:
    many = tuple(replace(PENDING, id=f"R-{i:04d}") for i in range(40))
    view = RequestListView(
        title="Waiting for you", requests=many, for_approver=True, empty_text="Nothing."
    )
    message = check_message(slack.reply_message(view))
    assert "16 more requests not shown" in shown(message)


def test_audit_is_compact_and_capped() -> None:
    events = tuple(
        AuditLine(
            id=i,
            at=ASKED,
            actor=f"user{i}@contoso.com <x>",
            action="request.created",
            target="bob@contoso.com/global-admin",
            summary="x" * 250,
        )
        for i in range(2000)
    )
    message = check_message(
        slack.reply_message(AuditView(title="Audit", events=events, truncated=True))
    )
    text = shown(message)
    assert "more events not shown" in text and "Older events omitted" in text
    assert "`#0` 2026-03-02 09:00 UTC" in text
    small = check_message(slack.reply_message(AuditView(title="Audit", events=events[:3])))
    assert len(small["blocks"]) == 2
    check_message(slack.reply_message(AuditView(title="Audit", events=())))


def test_form_as_a_message_lists_roles_with_activate() -> None:
    form = FormView(person=BOB, roles=(role_line(1), role_line(2)))
    message = check_message(slack.reply_message(form))
    assert [b["value"] for b in actions_of(message)] == ["role-1", "role-2"]
    check_message(slack.reply_message(FormView(person=BOB, roles=())))


def test_reply_to_a_notification_view_is_the_notification_message() -> None:
    n = note(v.SUBMITTED)
    assert slack.reply_message(n) == slack.notification_message(n)


# --- modals and App Home ------------------------------------------------------------------------


def test_activation_modal_fields_and_preselected_role() -> None:
    form = FormView(
        person=BOB,
        roles=(
            RoleLine(role=GA, max_duration_seconds=28800, requires_approval=True),
            RoleLine(
                role=RoleRef("x", "A" * 120),
                max_duration_seconds=3600,
                requires_approval=False,
                pending_request="R-PEND",
            ),
        ),
    )
    modal = check_view(
        slack.activation_modal(form, selected_role="global-admin", private_metadata="C123")
    )
    assert modal["callback_id"] == slack.ACTIVATION_MODAL == "pim_activation_modal"
    assert modal["title"]["text"] == "Activate a role" and modal["submit"]["text"] == "Request"
    assert modal["private_metadata"] == "C123"
    inputs = {b["block_id"]: b for b in modal["blocks"] if b["type"] == "input"}
    assert list(inputs) == [
        slack.ROLE_BLOCK,
        slack.DURATION_BLOCK,
        slack.JUSTIFICATION_BLOCK,
        slack.TICKET_BLOCK,
    ]
    select = inputs[slack.ROLE_BLOCK]["element"]
    assert select["action_id"] == slack.ROLE_ACTION
    assert select["options"][0]["text"]["text"] == "Global Administrator · max 8h · needs approval"
    assert len(select["options"][1]["text"]["text"]) <= 75
    assert select["initial_option"] == select["options"][0]
    duration = inputs[slack.DURATION_BLOCK]
    assert duration["optional"] and duration["element"]["action_id"] == slack.DURATION_ACTION
    assert duration["element"]["placeholder"]["text"] == "1h, 90m, 2h30m"
    why = inputs[slack.JUSTIFICATION_BLOCK]["element"]
    assert why["multiline"] and why["max_length"] == 500
    assert why["action_id"] == slack.JUSTIFICATION_ACTION
    assert inputs[slack.TICKET_BLOCK]["element"]["action_id"] == slack.TICKET_ACTION
    plain = check_view(slack.activation_modal(form, selected_role="not-mine"))
    assert "initial_option" not in plain["blocks"][0]["element"]


def test_activation_modal_without_eligible_roles_cannot_be_submitted() -> None:
    modal = check_view(slack.activation_modal(FormView(person=BOB, roles=())))
    assert "submit" not in modal
    assert [b["type"] for b in modal["blocks"]] == ["section"]
    assert "not eligible" in shown(modal)


def test_modal_errors_point_at_blocks() -> None:
    assert slack.modal_errors({slack.DURATION_BLOCK: "Too long."}) == {
        "response_action": "errors",
        "errors": {"duration": "Too long."},
    }


@pytest.mark.parametrize(
    ("approve", "title", "submit"),
    [(True, "Approve request", "Approve"), (False, "Deny request", "Deny")],
)
def test_decision_modal(approve: bool, title: str, submit: str) -> None:
    modal = check_view(slack.decision_modal(PENDING, approve=approve))
    assert modal["callback_id"] == slack.DECISION_MODAL == "pim_decision_modal"
    assert modal["title"]["text"] == title and modal["submit"]["text"] == submit
    assert len(modal["title"]["text"]) <= 24
    assert json.loads(modal["private_metadata"]) == {"request": "R-7K2Q", "approve": approve}
    reason = modal["blocks"][-1]
    assert reason["block_id"] == slack.REASON_BLOCK and reason["optional"] is False
    assert reason["element"]["action_id"] == slack.REASON_ACTION
    assert reason["element"]["max_length"] == 500 and reason["element"]["multiline"]
    assert ESCAPED in shown(modal) and "<!channel>" not in json.dumps(modal)
    assert not actions_of(modal)


def test_home_has_three_sections_with_their_buttons_and_empty_texts() -> None:
    roles = RolesView(person=BOB, roles=(role_line(1),))
    mine = RequestListView(
        title="Mine", requests=(), for_approver=False, empty_text="You have no pending requests."
    )
    approvals = RequestListView(
        title="Approvals",
        requests=(PENDING,),
        for_approver=True,
        empty_text="Nothing is waiting for you.",
    )
    home = check_view(slack.home_view(roles, mine, approvals))
    assert home["type"] == "home"
    headers = [b["text"]["text"] for b in home["blocks"] if b["type"] == "header"]
    assert headers == ["My roles", "My requests", "Approve requests"]
    assert "You have no pending requests." in shown(home)
    assert [b["action_id"] for b in actions_of(home)] == [v.ACTIVATE, v.APPROVE, v.DENY]
    empty = check_view(
        slack.home_view(RolesView(person=BOB, roles=()), mine, replace(approvals, requests=()))
    )
    assert "Nothing is waiting for you." in shown(empty)
    assert "no eligible or active roles" in shown(empty)


def test_home_with_everything_full_stays_within_100_blocks() -> None:
    roles = RolesView(person=BOB, roles=tuple(role_line(i) for i in range(80)))
    many = tuple(replace(PENDING, id=f"R-{i:04d}") for i in range(60))
    mine = RequestListView(title="Mine", requests=many, for_approver=False, empty_text="-")
    approvals = replace(mine, for_approver=True)
    home = check_view(slack.home_view(roles, mine, approvals))
    assert len(home["blocks"]) <= 100
    text = shown(home)
    assert "more roles not shown" in text and text.count("more requests not shown") == 2


# --- snapshots ---------------------------------------------------------------------------------

SNAPSHOT_CASES = {
    "pending": lambda: slack.notification_message(
        note(v.APPROVAL_NEEDED, headline="Bob Builder asks for Global Administrator for 2h.")
    ),
    "approved": lambda: slack.notification_message(note(v.REQUEST_UPDATE, request=APPROVED)),
    "denied": lambda: slack.notification_message(note(v.REQUEST_UPDATE, request=DENIED)),
    "timed_out": lambda: slack.notification_message(note(v.REQUEST_UPDATE, request=TIMED_OUT)),
    "canceled": lambda: slack.notification_message(note(v.REQUEST_UPDATE, request=CANCELED)),
    "submitted": lambda: slack.notification_message(
        note(
            v.SUBMITTED,
            headline="Request R-7K2Q for Global Administrator is waiting for approval "
            "(until 2026-03-03 09:00 UTC).",
        )
    ),
    "expiring": lambda: slack.notification_message(
        note(
            v.EXPIRING,
            request=None,
            end_at=DEADLINE,
            headline="Your Global Administrator access ends in 15m (at 2026-03-03 09:00 UTC).",
        )
    ),
    "decision_modal_deny": lambda: slack.decision_modal(PENDING, approve=False),
    "activation_modal": lambda: slack.activation_modal(
        FormView(
            person=BOB,
            roles=(
                RoleLine(role=GA, max_duration_seconds=28800, requires_approval=True),
                RoleLine(role=HELPDESK, max_duration_seconds=14400, requires_approval=False),
            ),
        )
    ),
}


@pytest.mark.parametrize("name", sorted(SNAPSHOT_CASES))
def test_snapshot(name: str) -> None:
    rendered = SNAPSHOT_CASES[name]()
    (check_view if rendered.get("type") == "modal" else check_message)(rendered)
    path = SNAPSHOTS / f"{name}.json"
    current = json.dumps(rendered, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(current, encoding="utf-8")
    assert path.exists(), f"missing snapshot {path.name}; run with UPDATE_SNAPSHOTS=1"
    assert current == path.read_text(encoding="utf-8"), (
        f"{path.name} changed; review, then run with UPDATE_SNAPSHOTS=1"
    )


def test_activation_modal_requires_what_the_chosen_role_requires():
    from cards.views import RoleLine, RoleRef

    strict = RoleLine(
        role=RoleRef("ga", "Global Administrator"),
        max_duration_seconds=3600,
        requires_approval=True,
        requires_justification=True,
        requires_ticket=True,
    )
    lax = RoleLine(
        role=RoleRef("quick", "Quick Role"), max_duration_seconds=3600, requires_approval=False
    )
    form = FormView(person=BOB, roles=(strict, lax))

    def optional(view: dict) -> dict[str, bool]:
        return {b["block_id"]: b["optional"] for b in view["blocks"] if b["type"] == "input"}

    assert optional(slack.activation_modal(form, selected_role="ga")) == {
        "role": False,
        "duration": True,
        "justification": False,
        "ticket": False,
    }
    assert optional(slack.activation_modal(form, selected_role="quick"))["justification"]
    assert optional(slack.activation_modal(form))["justification"]  # quick needs none
