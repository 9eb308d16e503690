"""Teams cards: every renderer's output is a schema 1.4 Adaptive Card that a strict structural
checker accepts, stays under Teams' size limit, shows user text exactly as typed (never as
markdown), and gives Action.Execute the verb and data our invoke handler expects.

Snapshots live in tests/cards/snapshots/teams_*.json; regenerate them with UPDATE_SNAPSHOTS=1.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cards import teams
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
from tests.cards.helpers import (
    MARKUP,
    Card,
    check_card,
    click,
    executes,
    literal_shown,
    markdown_html,
    markdown_it,
    shown,
    walk_of,
)

SNAPSHOTS = Path(__file__).parent / "snapshots"
HOSTILE = (
    "[click](https://evil) **bold** `code` <b>x</b> _it_ ~~s~~ &lt; "
    "{{DATE(2026-01-01T00:00:00Z, SHORT)}}"
)
INERT = HOSTILE.replace("{{", "{\u200b{")  # how a card shows it: {{DATE()}} broken

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
        by=CAROL, outcome="Denied", at=DECIDED, reason="Use the [ops](https://evil) runbook instead"
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


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("[click](https://evil)", r"\[click\]\(https://evil)"),
        ("**bold**", r"\*\*bold\*\*"),
        ("a_b _c_", r"a_b \_c\_"),
        ("1. one", r"1\. one"),
        ("- item", r"\- item"),
        ("# head", r"\# head"),
        ("&amp; AT&T", r"\&amp; AT&T"),
        ("Admin (EU)", "Admin (EU)"),
        ("bob@contoso.com", "bob@contoso.com"),
        ("{{DATE(2026-01-01T00:00:00Z)}}", "{\u200b{DATE(2026-01-01T00:00:00Z)}}"),
    ],
)
def test_escape_examples(raw: str, escaped: str) -> None:
    assert teams.escape(raw) == escaped


@given(
    st.text(
        alphabet=st.characters(codec="ascii", categories=["L", "N", "P", "S", "Zs"]), max_size=60
    )
)
def test_escaped_text_renders_exactly_as_typed(text: str) -> None:
    text = " ".join(text.split())  # one line; markdown trims and joins whitespace anyway
    if markdown_it is None or not text:  # pragma: no cover
        return
    expected = html.escape(re.sub(r"\{(?=\{)", "{\u200b", text), quote=False)
    assert markdown_html(teams.escape(text)) == f"<p>{expected}</p>\n".replace('"', "&quot;")


def test_multiline_escape_blocks_lists_headings_and_quotes() -> None:
    text = "ok\n- a\n+ b\n1) c\n> d\n# e\n===\n    f\r* g"
    assert MARKUP.search(markdown_html(teams.escape(text))) is None


# --- every card --------------------------------------------------------------------------------

ALL_KINDS = [
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
    "something_new",
]


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("request_view", [PENDING, DENIED, None], ids=["pending", "denied", "none"])
def test_every_notification_kind_is_valid_and_shows_user_text_literally(
    kind: str, request_view: RequestView | None
) -> None:
    hostile = note(
        kind,
        request=request_view,
        headline=f"Bob says {HOSTILE}",
        end_at=DEADLINE,
        details=(f"note: {HOSTILE}",),
    )
    card = check_card(teams.notification_card(hostile))
    runs = "\n".join(walk_of(card).runs)
    decided = request_view is not None and (
        kind == v.REQUEST_UPDATE
        or (kind in (v.APPROVAL_NEEDED, v.SUBMITTED) and not request_view.pending)
    )
    if decided or (request_view is not None and kind in (v.APPROVAL_NEEDED, v.SUBMITTED)):
        assert literal_shown(card, HOSTILE)  # the justification, under the facts
    if not decided:
        assert f"Bob says {INERT}" in runs
    if not decided and kind not in (v.APPROVAL_NEEDED, v.SUBMITTED):
        assert f"note: {INERT}" in runs


def test_every_notification_survives_the_outbox_round_trip() -> None:
    for kind in [v.APPROVAL_NEEDED, v.SUBMITTED, v.DENIED, v.EXPIRING]:
        original = note(kind, request=DENIED if kind == v.DENIED else PENDING)
        again = Notification.from_dict(json.loads(json.dumps(original.to_dict())))
        assert teams.notification_card(again) == teams.notification_card(original)


# --- the approval card -------------------------------------------------------------------------


def test_pending_card_shows_details_and_approve_deny_with_the_request_id() -> None:
    card = check_card(teams.notification_card(note(v.APPROVAL_NEEDED)))
    facts = {
        f["title"]: f["value"]
        for el in card["body"]
        if el["type"] == "FactSet"
        for f in el["facts"]
    }
    assert facts == {
        "Requester": "Bob Builder (bob@contoso.com)",
        "Role": "Global Administrator",
        "Duration": "2h",
        "Starts": "Right away",
        "Ticket": "INC0012345",
        "Decide by": "2026-03-03 09:00 UTC",
    }
    assert literal_shown(card, HOSTILE)
    assert "[click](https://evil)" not in "".join(walk_of(card).markdown)
    assert [(a["title"], a["verb"], a["data"], a["style"]) for a in card["actions"]] == [
        ("Approve", v.APPROVE, {"request": "R-7K2Q"}, "positive"),
        ("Deny", v.DENY, {"request": "R-7K2Q"}, "destructive"),
    ]
    reason = card["body"][-1]
    assert reason["type"] == "Input.Text" and reason["id"] == teams.REASON_INPUT == "reason"
    assert reason["isMultiline"] and reason["maxLength"] == 500
    assert reason["label"] == "Reason (required to deny)"
    assert not reason.get("isRequired")  # the engine decides; Approve may go without one


def test_pending_card_asks_for_a_reason_when_the_role_requires_one() -> None:
    card = check_card(
        teams.notification_card(
            note(v.APPROVAL_NEEDED, request=replace(PENDING, needs_approver_justification=True))
        )
    )
    assert card["body"][-1]["label"] == "Reason (required)"


def test_clicking_approve_or_deny_sends_the_request_id_and_the_reason() -> None:
    card = teams.notification_card(note(v.APPROVAL_NEEDED))
    assert click(card, v.APPROVE, {}) == {
        "verb": "pim_approve",
        "data": {"request": "R-7K2Q", "reason": ""},
    }
    assert click(card, v.DENY, {"reason": "not today"}) == {
        "verb": "pim_deny",
        "data": {"request": "R-7K2Q", "reason": "not today"},
    }


def test_a_later_start_is_shown_as_a_time() -> None:
    later = replace(PENDING, start_at="2026-03-02T18:30:00+00:00")
    card = check_card(teams.notification_card(note(v.APPROVAL_NEEDED, request=later)))
    assert "2026-03-02 18:30 UTC" in shown(card) and "Right away" not in shown(card)


@pytest.mark.parametrize(
    ("request_view", "emoji", "line"),
    [
        (
            APPROVED,
            "✅",
            "Approved by Carol Chen at 2026-03-02 09:20 UTC: Change CHG-9 is approved",
        ),
        (
            DENIED,
            "⛔",
            "Denied by Carol Chen at 2026-03-02 09:20 UTC: Use the [ops](https://evil) runbook instead",
        ),
        (TIMED_OUT, "⌛", "Timed out at 2026-03-03 09:00 UTC: nobody decided in time"),
        (CANCELED, "🚫", "Canceled by Bob Builder at 2026-03-02 09:20 UTC"),
    ],
)
def test_decided_card_has_no_actions_and_says_who_when_why(
    request_view: RequestView, emoji: str, line: str
) -> None:
    for kind in (v.REQUEST_UPDATE, v.APPROVAL_NEEDED, v.SUBMITTED):
        card = check_card(teams.notification_card(note(kind, request=request_view)))
        walk = walk_of(card)
        assert not walk.executes and not walk.inputs and "actions" not in card
        assert f"{emoji} {line}" in walk.runs
        assert card["body"][0]["text"].startswith(emoji)
        assert "Decide by" not in shown(card)
    assert teams.request_update_card(
        note(v.REQUEST_UPDATE, request=request_view)
    ) == teams.notification_card(note(v.REQUEST_UPDATE, request=request_view))


def test_submitted_card_has_a_cancel_button() -> None:
    card = check_card(teams.notification_card(note(v.SUBMITTED)))
    assert executes(card) == [(v.CANCEL, {"request": "R-7K2Q"})]
    assert card["actions"][0]["title"] == "Cancel request"


def test_expiring_card_offers_extend_and_the_ended_one_request_again() -> None:
    card = check_card(teams.notification_card(note(v.EXPIRING, request=None, end_at=DEADLINE)))
    assert executes(card) == [(v.EXTEND, {"role": "global-admin"})]
    assert "ends 2026-03-03 09:00 UTC" in shown(card)
    ended = check_card(teams.notification_card(note(v.EXPIRED, request=None)))
    assert executes(ended) == [(v.REQUEST_AGAIN, {"role": "global-admin"})]


def test_denied_message_to_the_requester_carries_the_reason() -> None:
    headline = f"Carol Chen denied R-7K2Q. Reason: {HOSTILE}"
    card = check_card(teams.notification_card(note(v.DENIED, request=DENIED, headline=headline)))
    assert f"⛔ Carol Chen denied R-7K2Q. Reason: {INERT}" in walk_of(card).runs
    assert not executes(card)


def test_a_very_long_justification_is_shortened() -> None:
    long = replace(PENDING, justification="*" * 1500 + "x" * 1500)
    card = check_card(teams.notification_card(note(v.APPROVAL_NEEDED, request=long)))
    why = next(r for r in walk_of(card).runs if r.startswith("***"))
    assert len(why) == 2000 and why.endswith("…")


def test_long_names_in_facts_are_shortened_and_escaped() -> None:
    odd = replace(
        PENDING, requester=Person(email="x@y", name="_" * 900), ticket="[t](https://evil)"
    )
    card = check_card(teams.notification_card(note(v.APPROVAL_NEEDED, request=odd)))
    facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
    assert facts["Ticket"] == r"\[t\]\(https://evil)"
    assert facts["Requester"].startswith(r"\_\_") and "…" in facts["Requester"]


# --- replies to typed commands -----------------------------------------------------------------


def test_reply_ok_and_refusal_with_usage() -> None:
    ok = check_card(teams.reply_card(Reply(text=f"Done: {HOSTILE}")))
    assert literal_shown(ok, f"Done: {HOSTILE}")
    bad = check_card(
        teams.reply_card(
            Reply(text="Unknown role <x>", ok=False, usage="activate ROLE [DURATION] …")
        )
    )
    first, usage = bad["body"]
    assert first["inlines"][0] == {
        "type": "TextRun",
        "text": "✗ Unknown role <x>",
        "color": "attention",
    }
    assert [r["text"] for r in usage["inlines"]] == ["Usage: ", "activate ROLE [DURATION] …"]
    assert all(r["isSubtle"] for r in usage["inlines"])
    with_request = check_card(teams.reply_card(Reply(text="Sent.", request=PENDING)))
    assert "Global Administrator" in shown(with_request) and not executes(with_request)


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
    card = check_card(teams.reply_card(roles))
    assert executes(card) == [
        (v.ACTIVATE, {"role": "global-admin"}),
        (v.DEACTIVATE, {"role": "helpdesk-admin"}),
    ]
    confirm = card["body"][2]["items"][-1]["actions"][0]
    assert confirm["type"] == "Action.ShowCard" and confirm["title"] == "Deactivate"
    text = shown(card)
    for seen in [
        "max 8h · needs approval",
        "Active until 2026-03-03 09:00 UTC",
        "Pending R-AAAA",
        "Active permanently (assigned)",
        "Eligible",
    ]:
        assert seen in text
    empty = check_card(teams.reply_card(RolesView(person=BOB, roles=())))
    assert "no eligible or active roles" in shown(empty)


def test_many_roles_fit_one_card_with_a_count_of_the_rest() -> None:
    card = check_card(
        teams.reply_card(RolesView(person=BOB, roles=tuple(role_line(i) for i in range(120))))
    )
    shown_roles = len(executes(card))
    assert 20 < shown_roles < 120
    assert f"{120 - shown_roles} more roles not shown" in shown(card)
    assert "Role number 119" in shown(card)


def test_request_lists_have_cancel_or_approve_and_deny_with_one_reason_input() -> None:
    mine = RequestListView(
        title="Your pending requests",
        requests=(PENDING,),
        for_approver=False,
        empty_text="You have no pending requests.",
    )
    card = check_card(teams.reply_card(mine))
    assert executes(card) == [(v.CANCEL, {"request": "R-7K2Q"})]
    assert not walk_of(card).inputs and literal_shown(card, HOSTILE)
    other = replace(PENDING, id="R-8XYZ", requester=CAROL)
    approvals = replace(mine, requests=(PENDING, other), for_approver=True)
    card = check_card(teams.reply_card(approvals))
    # Each button also names the list it is on, so a click redraws that list in place.
    listed = {"shown": "R-7K2Q,R-8XYZ"}
    assert executes(card) == [
        (v.APPROVE, {"request": "R-7K2Q", **listed}),
        (v.DENY, {"request": "R-7K2Q", **listed}),
        (v.APPROVE, {"request": "R-8XYZ", **listed}),
        (v.DENY, {"request": "R-8XYZ", **listed}),
    ]
    assert [i["id"] for i in walk_of(card).inputs] == [teams.REASON_INPUT]
    assert click(card, v.DENY, {"reason": "no"}, {"request": "R-8XYZ", **listed})["data"] == {
        "request": "R-8XYZ",
        "reason": "no",
        **listed,
    }
    empty = check_card(teams.reply_card(replace(mine, requests=())))
    assert shown(empty).endswith("You have no pending requests.")


def test_a_decided_request_in_a_list_shows_its_outcome_instead_of_buttons() -> None:
    view = RequestListView(title="Recent", requests=(APPROVED,), for_approver=True, empty_text="-")
    card = check_card(teams.reply_card(view))
    assert not executes(card) and not walk_of(card).inputs
    assert any(r.startswith("✅ Approved by Carol Chen") for r in walk_of(card).runs)


def test_a_long_approval_list_is_capped_with_a_count() -> None:
    many = tuple(replace(PENDING, id=f"R-{i:04d}") for i in range(60))
    view = RequestListView(
        title="Waiting for you", requests=many, for_approver=True, empty_text="Nothing."
    )
    card = check_card(teams.reply_card(view))
    listed = len(executes(card)) // 2
    assert 5 < listed < 60 and f"{60 - listed} more requests not shown." in shown(card)


def test_audit_is_compact_and_capped() -> None:
    events = tuple(
        AuditLine(
            id=i,
            at=ASKED,
            actor=f"user{i}@contoso.com [x](https://evil)",
            action="request.created",
            target="bob@contoso.com/global-admin",
            summary="x" * 250,
        )
        for i in range(2000)
    )
    card = check_card(teams.reply_card(AuditView(title="Audit", events=events, truncated=True)))
    text = shown(card)
    assert "more events not shown" in text and "Older events omitted" in text
    assert card["body"][1]["facts"][0]["title"] == "#0 · 2026-03-02 09:00 UTC"
    small = check_card(teams.reply_card(AuditView(title="Audit", events=events[:3])))
    assert len(small["body"]) == 2 and len(small["body"][1]["facts"]) == 3
    check_card(teams.reply_card(AuditView(title="Audit", events=())))


def test_form_and_notification_replies_are_their_own_cards() -> None:
    form = FormView(person=BOB, roles=(role_line(1),))
    assert teams.reply_card(form) == teams.activation_form(form)
    n = note(v.SUBMITTED)
    assert teams.reply_card(n) == teams.notification_card(n)
    with pytest.raises(TypeError):
        teams.reply_card(object())


# --- the activation form -------------------------------------------------------------------------

FORM = FormView(
    person=BOB,
    roles=(
        RoleLine(role=GA, max_duration_seconds=28800, requires_approval=True),
        RoleLine(
            role=HELPDESK,
            max_duration_seconds=14400,
            requires_approval=False,
            pending_request="R-PEND",
        ),
    ),
)


def test_activation_form_fields_and_preselected_role() -> None:
    card = check_card(teams.activation_form(FORM, selected_role="global-admin"))
    inputs = {i["id"]: i for i in walk_of(card).inputs}
    assert list(inputs) == ["role", "duration", "justification", "ticket"]
    select = inputs[teams.ROLE_INPUT]
    assert select["type"] == "Input.ChoiceSet" and select["style"] == "compact"
    assert select["choices"] == [
        {"title": "Global Administrator · max 8h · needs approval", "value": "global-admin"},
        {"title": "Helpdesk Administrator · max 4h · pending R-PEND", "value": "helpdesk-admin"},
    ]
    assert select["value"] == "global-admin"
    assert inputs[teams.DURATION_INPUT]["placeholder"] == "1h, 90m, 2h30m"
    why = inputs[teams.JUSTIFICATION_INPUT]
    assert why["isMultiline"] and why["maxLength"] == 500
    assert inputs[teams.TICKET_INPUT]["type"] == "Input.Text"
    assert card["actions"] == [
        {
            "type": "Action.Execute",
            "title": "Request",
            "verb": "pim_activation_submit",
            "data": {},
            "style": "positive",
        }
    ]
    plain = check_card(teams.activation_form(FORM, selected_role="not-mine"))
    assert "value" not in walk_of(plain).inputs[0]


def test_submitting_the_form_sends_every_field() -> None:
    card = teams.activation_form(FORM, selected_role="global-admin")
    assert click(card, teams.SUBMIT_ACTIVATION, {"duration": "2h", "justification": "INC-1"}) == {
        "verb": "pim_activation_submit",
        "data": {"role": "global-admin", "duration": "2h", "justification": "INC-1", "ticket": ""},
    }


def test_form_errors_sit_under_their_inputs_and_typed_values_come_back() -> None:
    typed = {"role": "helpdesk-admin", "duration": "99h", "justification": HOSTILE, "ticket": "T-1"}
    card = check_card(
        teams.activation_form(
            replace(FORM, errors={"justification": "A justification is required."}),
            errors={
                "duration": "At most 4h for Helpdesk Administrator.",
                "_": f"Something else: {HOSTILE}",
            },
            values=typed,
        )
    )
    body = card["body"]
    kinds = [
        el.get("id") or (el["inlines"][0]["text"] if el["type"] == "RichTextBlock" else el["type"])
        for el in body
    ]
    assert kinds[1] == f"Something else: {INERT}"
    assert kinds[kinds.index("duration") + 1] == "At most 4h for Helpdesk Administrator."
    assert kinds[kinds.index("justification") + 1] == "A justification is required."
    errors = [el for el in body if el["type"] == "RichTextBlock"]
    assert all(el["inlines"][0]["color"] == "attention" for el in errors)
    assert {i["id"]: i.get("value") for i in walk_of(card).inputs} == typed


def test_form_without_eligible_roles_cannot_be_submitted() -> None:
    card = check_card(teams.activation_form(FormView(person=BOB, roles=())))
    assert "actions" not in card and not walk_of(card).inputs
    assert "not eligible" in shown(card)


def test_a_huge_form_keeps_to_a_hundred_choices() -> None:
    card = check_card(
        teams.activation_form(FormView(person=BOB, roles=tuple(role_line(i) for i in range(150))))
    )
    assert len(walk_of(card).inputs[0]["choices"]) == 100
    assert "50 more roles not listed" in shown(card)


# --- snapshots ---------------------------------------------------------------------------------

SNAPSHOT_CASES: dict[str, Callable[[], Card]] = {
    "pending": lambda: teams.notification_card(
        note(v.APPROVAL_NEEDED, headline="Bob Builder asks for Global Administrator for 2h.")
    ),
    "approved": lambda: teams.notification_card(note(v.REQUEST_UPDATE, request=APPROVED)),
    "denied": lambda: teams.notification_card(note(v.REQUEST_UPDATE, request=DENIED)),
    "timed_out": lambda: teams.notification_card(note(v.REQUEST_UPDATE, request=TIMED_OUT)),
    "canceled": lambda: teams.notification_card(note(v.REQUEST_UPDATE, request=CANCELED)),
    "submitted": lambda: teams.notification_card(
        note(
            v.SUBMITTED,
            headline="Request R-7K2Q for Global Administrator is waiting for approval "
            "(until 2026-03-03 09:00 UTC).",
        )
    ),
    "expiring": lambda: teams.notification_card(
        note(
            v.EXPIRING,
            request=None,
            end_at=DEADLINE,
            headline="Your Global Administrator access ends in 15m (at 2026-03-03 09:00 UTC).",
        )
    ),
    "activation_form": lambda: teams.activation_form(FORM, selected_role="global-admin"),
}


@pytest.mark.parametrize("name", sorted(SNAPSHOT_CASES))
def test_snapshot(name: str) -> None:
    rendered = check_card(SNAPSHOT_CASES[name]())
    path = SNAPSHOTS / f"teams_{name}.json"
    current = json.dumps(rendered, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(current, encoding="utf-8")
    assert path.exists(), f"missing snapshot {path.name}; run with UPDATE_SNAPSHOTS=1"
    assert current == path.read_text(encoding="utf-8"), (
        f"{path.name} changed; review, then run with UPDATE_SNAPSHOTS=1"
    )
