"""Every Teams card the bot produces, rendered by the official Adaptive Cards renderer (npm
`adaptivecards`, with markdown-it for TextBlock markdown as Teams formats it) in headless
Chromium, targeting schema 1.4.

Each card must parse, validate and render with no warning at all, render something, and show
no markdown-made links or markup; clicking its buttons must give `onExecuteAction` the verb
and data (inputs merged in by the renderer) that bot/teams/bot.py's invoke handler reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from functools import partial
from types import SimpleNamespace
from typing import Any, get_args

import pytest
from botbuilder.core import TurnContext
from botbuilder.schema import Activity

from bot.teams import bot as teams_bot
from cards import teams
from cards import views as v
from cards.views import (
    AlertLine,
    AuditLine,
    AuditView,
    Decision,
    DigestView,
    Figure,
    FormView,
    Notification,
    Person,
    Ranked,
    Reply,
    RequestListView,
    RequestView,
    RoleLine,
    RoleRef,
    RolesView,
)
from handlers import forms
from handlers.errors import PimError
from tests.cardrender.browser import SyncCardRenderer
from tests.cards import review_samples as reviews

Card = dict[str, Any]

HOSTILE = (
    "[click](https://evil) **bold** `code` <b>x</b> _it_ ~~s~~ &lt; # h "
    "{{DATE(2026-01-01T00:00:00Z, SHORT)}}"
)
SHOWN = HOSTILE.replace("{{", "{\u200b{")  # how a card shows it: {{DATE()}} broken
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
STRICT = replace(PENDING, needs_approver_justification=True)
APPROVED = replace(
    PENDING,
    status="Provisioned",
    decision=Decision(by=CAROL, outcome="Granted", at=DECIDED, reason="Change CHG-9 is approved"),
)
DENIED = replace(
    PENDING,
    status="Denied",
    decision=Decision(by=CAROL, outcome="Denied", at=DECIDED, reason=HOSTILE),
)
TIMED_OUT = replace(
    PENDING, status="TimedOut", decision=Decision(by=None, outcome="TimedOut", at=DEADLINE)
)
CANCELED = replace(
    PENDING, status="Canceled", decision=Decision(by=BOB, outcome="Canceled", at=DECIDED)
)
REVOKED = replace(
    PENDING, status="Revoked", decision=Decision(by=CAROL, outcome="Revoked", at=DECIDED)
)
DECIDED_REQUESTS = {
    "approved": APPROVED,
    "denied": DENIED,
    "timed_out": TIMED_OUT,
    "canceled": CANCELED,
    "revoked": REVOKED,
}
# User text in every place a card shows it: facts, the justification, the names.
ODD = replace(
    PENDING,
    requester=Person(email="odd@contoso.com", name=HOSTILE),
    role=RoleRef(id="odd", name=HOSTILE),
    ticket=HOSTILE,
)

DIGEST = DigestView(
    title="PIM weekly digest",
    period_start="2026-02-23T00:00:00+00:00",
    period_end="2026-03-02T00:00:00+00:00",
    timezone="UTC",
    tiles=(Figure("Activations", 42, 30), Figure("Approval rate", 93.0, 90.0, "%")),
    approvals=(Figure("Median time to approve", 540, 600, "s"),),
    daily_activations=(3, 5, 8, 6, 9, 7, 4),
    top_roles=(Ranked("Global Administrator", "12"),),
    slowest_approvers=(Ranked("Carol Chen", "3h20m"),),
    after_hours=Figure("After hours", 4, 2),
    longest_activations=(Ranked("Bob Builder · Global Administrator", "8h"),),
    frequent_activators=(Ranked("Bob Builder", "9"),),
    ending_soon=(Ranked("Reader · Bob Builder", "2026-12-01"),),
    alerts=(AlertLine("TooManyGlobalAdmins", "high", HOSTILE),),
)

# Notification kinds are the lower-case string constants of cards.views; verbs start pim_.
KINDS = sorted(
    value
    for name, value in vars(v).items()
    if name.isupper() and isinstance(value, str) and not value.startswith("pim_")
)


def note(kind: str, request: RequestView | None = PENDING, **kw: Any) -> Notification:
    kw.setdefault("headline", f"{kind}: Bob Builder asked for Global Administrator. {HOSTILE}")
    kw.setdefault("role", GA)
    return Notification(kind=kind, request=request, **kw)


def role_line(i: int, **kw: Any) -> RoleLine:
    return RoleLine(
        role=RoleRef(id=f"role-{i}", name=f"Role number {i}"),
        max_duration_seconds=8 * 3600,
        requires_approval=i % 2 == 0,
        **kw,
    )


ROLES = RolesView(
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
            eligible_until=DEADLINE,
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
        RoleLine(
            role=RoleRef("reader", "Reader"),
            max_duration_seconds=3600,
            requires_approval=False,
            active_until=DEADLINE,
            member_type="Activated",
        ),
    ),
)
TYPED = {"role": "helpdesk-admin", "duration": "99h", "justification": HOSTILE, "ticket": "T-1"}
MINE = RequestListView(
    title="Your pending requests",
    requests=(PENDING,),
    for_approver=False,
    empty_text="You have no pending requests.",
)
FOR_ME = RequestListView(
    title="Waiting for you",
    for_approver=True,
    empty_text="Nothing.",
    requests=(PENDING, replace(PENDING, id="R-8XYZ", requester=CAROL), APPROVED),
)
AUDIT = tuple(
    AuditLine(
        id=i,
        at=ASKED,
        actor=f"user{i}@contoso.com {HOSTILE}",
        action="request.created",
        target="bob@contoso.com/global-admin",
        summary="x" * 250,
    )
    for i in range(400)
)


def _notifications() -> dict[str, Callable[[], Card]]:
    cases: dict[str, Callable[[], Card]] = {}
    for kind in KINDS:
        extra: dict[str, Any] = {"digest": DIGEST} if kind == v.DIGEST else {}
        shapes: dict[str, Notification] = {
            "pending": note(kind, **extra),
            "bare": note(kind, request=None, end_at=DEADLINE, details=(HOSTILE, "second"), **extra),
            "no_role": note(kind, request=None, role=None, **extra),
        }
        for name, request in DECIDED_REQUESTS.items():
            shapes[name] = note(kind, request=request, **extra)
        for shape, n in shapes.items():
            cases[f"note-{kind}-{shape}"] = partial(teams.notification_card, n)
    cases["note-approval_needed-strict"] = lambda: teams.notification_card(
        note(v.APPROVAL_NEEDED, request=STRICT)
    )
    cases["note-approval_needed-odd"] = lambda: teams.notification_card(
        note(v.APPROVAL_NEEDED, request=ODD)
    )
    cases["note-approval_needed-later"] = lambda: teams.notification_card(
        note(
            v.APPROVAL_NEEDED,
            request=replace(
                PENDING, start_at=DEADLINE, ticket=None, justification=None, duration_seconds=None
            ),
        )
    )
    cases["note-approval_needed-long"] = lambda: teams.notification_card(
        note(v.APPROVAL_NEEDED, request=replace(PENDING, justification="*" * 3000))
    )
    for name, request in DECIDED_REQUESTS.items():
        cases[f"update-{name}"] = partial(
            teams.request_update_card, note(v.REQUEST_UPDATE, request=request)
        )
    return cases


CASES: dict[str, Callable[[], Card]] = {
    **_notifications(),
    "reply-ok": lambda: teams.reply_card(Reply(text=f"Done: {HOSTILE}")),
    "reply-error": lambda: teams.reply_card(
        Reply(text=f"Unknown role {HOSTILE}", ok=False, usage="activate ROLE [DURATION] …")
    ),
    "reply-error-no-usage": lambda: teams.reply_card(Reply(text="No.", ok=False)),
    "reply-with-request": lambda: teams.reply_card(Reply(text="Sent.", request=ODD)),
    "roles": lambda: teams.reply_card(ROLES),
    "roles-empty": lambda: teams.reply_card(RolesView(person=BOB, roles=())),
    "roles-many": lambda: teams.reply_card(
        RolesView(person=BOB, roles=tuple(role_line(i) for i in range(120)))
    ),
    "requests-mine": lambda: teams.reply_card(MINE),
    "requests-mine-empty": lambda: teams.reply_card(replace(MINE, requests=())),
    "requests-for-approver": lambda: teams.reply_card(FOR_ME),
    "requests-for-approver-decided": lambda: teams.reply_card(
        replace(FOR_ME, requests=(APPROVED, DENIED))
    ),
    "requests-for-approver-many": lambda: teams.reply_card(
        replace(FOR_ME, requests=tuple(replace(PENDING, id=f"R-{i:04d}") for i in range(60)))
    ),
    "audit": lambda: teams.reply_card(AuditView(title="Audit", events=AUDIT[:3])),
    "audit-capped": lambda: teams.reply_card(
        AuditView(title="Audit", events=AUDIT, truncated=True)
    ),
    "audit-empty": lambda: teams.reply_card(AuditView(title="Audit", events=())),
    "reply-digest": lambda: teams.reply_card(DIGEST),
    "reply-digest-empty": lambda: teams.reply_card(
        DigestView(
            title="PIM weekly digest", period_start=ASKED, period_end=DEADLINE, timezone="UTC"
        )
    ),
    "form": lambda: teams.activation_form(FORM),
    "form-reply": lambda: teams.reply_card(FORM),
    "form-selected": lambda: teams.activation_form(FORM, selected_role="global-admin"),
    "form-errors-and-values": lambda: teams.activation_form(
        replace(FORM, errors={"justification": "A justification is required."}),
        errors={
            "duration": "At most 4h for Helpdesk Administrator.",
            "_": f"Something else: {HOSTILE}",
        },
        values=TYPED,
    ),
    "form-no-roles": lambda: teams.activation_form(FormView(person=BOB, roles=())),
    # issue 12: inputs the client checks, questions asked on the card, lists redrawn in place
    "form-required": lambda: teams.activation_form(
        replace(
            FORM,
            roles=(
                replace(FORM.roles[0], requires_justification=True, requires_ticket=True),
                *FORM.roles[1:],
            ),
        ),
        selected_role="global-admin",
    ),
    "approval-asked-on-the-card": lambda: teams.approval_card(
        STRICT,
        "Bob Builder asks for Global Administrator for 2h.",
        error="Secret Administrator asks approvers for a reason. Give a reason in the box "
        "above, then click again.",
    ),
    "requests-for-approver-redrawn": lambda: teams.request_list_card(
        replace(FOR_ME, requests=(APPROVED, replace(PENDING, id="R-8XYZ", requester=CAROL))),
        error="Say why you deny it. Give a reason in the box above, then click again.",
    ),
    "form-huge": lambda: teams.activation_form(
        FormView(person=BOB, roles=tuple(role_line(i) for i in range(150)))
    ),
    **{
        f"review-{name}": partial(
            teams.notification_card,
            Notification(
                kind=v.REVIEW_CARD, headline=f"Please review access {HOSTILE}", review=card
            ),
        )
        for name, card in reviews.CARDS.items()
    },
    "reviews": lambda: teams.reply_card(reviews.LIST),
    "reviews-empty": lambda: teams.reply_card(reviews.EMPTY),
}


# --- every card renders cleanly ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_card_renders_without_warnings(card_renderer: SyncCardRenderer, name: str) -> None:
    card = CASES[name]()
    rendered = card_renderer.render(card)
    assert rendered["warnings"] == [], f"{name}: {rendered['warnings']}"
    assert rendered["html_length"] > 200 and rendered["text"].strip()
    assert rendered["markup"] == [], f"{name}: markdown made {rendered['markup']}"
    if card.get("actions") or "Action." in str(card.get("body")):
        assert rendered["actions"], f"{name}: buttons were dropped"


BROKEN: dict[str, Card] = {  # what the zero-warning assertion above catches
    "unknown element": {"body": [{"type": "Fancy", "text": "x"}]},
    "element newer than 1.4": {"body": [{"type": "Table", "columns": [], "rows": []}]},
    "property newer than 1.4": {"body": [{"type": "TextBlock", "text": "x", "style": "heading"}]},
    "bad enum value": {"body": [{"type": "TextBlock", "text": "x", "size": "huge"}]},
    "bad run color": {
        "body": [
            {"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": "x", "color": "red"}]}
        ]
    },
    "duplicate input ids": {
        "body": [
            {"type": "Input.Text", "id": "a", "label": "A"},
            {"type": "Input.Text", "id": "a", "label": "B"},
        ]
    },
    "unknown action": {"actions": [{"type": "Action.Fly", "title": "x"}]},
    "too many actions": {
        "actions": [{"type": "Action.Execute", "title": f"{i}", "verb": "v"} for i in range(6)]
    },
    "version 1.5": {"version": "1.5", "body": [{"type": "TextBlock", "text": "x"}]},
    "no version": {"version": None, "body": [{"type": "TextBlock", "text": "x"}]},
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_the_renderer_flags_broken_cards(card_renderer: SyncCardRenderer, name: str) -> None:
    card = {"type": "AdaptiveCard", "version": "1.4", **BROKEN[name]}
    if card["version"] is None:
        del card["version"]
    assert card_renderer.render(card)["warnings"], name


def test_markdown_made_markup_is_flagged(card_renderer: SyncCardRenderer) -> None:
    rendered = card_renderer.render(
        {
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [{"type": "TextBlock", "text": "[a](https://x) **b**"}],
        }
    )
    assert len(rendered["markup"]) == 2 and rendered["warnings"] == []


def test_every_notification_kind_and_view_is_covered() -> None:
    assert {v.APPROVAL_NEEDED, v.REQUEST_UPDATE, v.SUBMITTED, v.EXPIRING, v.EXPIRED} <= set(KINDS)
    assert all(f"note-{kind}-pending" in CASES for kind in KINDS)
    views = {view.__name__ for view in get_args(v.View)}
    tested = {
        "Reply": "reply-ok",
        "RolesView": "roles",
        "RequestListView": "requests-mine",
        "AuditView": "audit",
        "FormView": "form-reply",
        "Notification": "note-denied-bare",
        "DigestView": "reply-digest",
        "ReviewsView": "reviews",
    }
    assert views <= set(tested), f"no render case for {sorted(views - set(tested))}"


def test_user_text_shows_exactly_as_typed(card_renderer: SyncCardRenderer) -> None:
    """Facts and TextBlocks go through markdown; what a person typed still shows literally."""
    text = card_renderer.render(CASES["note-approval_needed-odd"]())["text"]
    lines = [line.strip() for line in text.splitlines()]
    assert f"{SHOWN} (odd@contoso.com)" in lines  # requester fact
    assert lines.count(SHOWN) == 3  # the role and ticket facts, the justification
    assert f"approval_needed: Bob Builder asked for Global Administrator. {SHOWN}" in lines
    denied = card_renderer.render(CASES["update-denied"]())["text"]
    assert f"Denied by Carol Chen at 2026-03-02 09:20 UTC: {SHOWN}" in denied
    audit = card_renderer.render(CASES["audit"]())["text"]
    assert f"user0@contoso.com {SHOWN} · request.created" in audit


def test_pending_card_shows_the_decision_inputs(card_renderer: SyncCardRenderer) -> None:
    pending = card_renderer.render(CASES["note-approval_needed-pending"]())
    assert pending["actions"] == ["Approve", "Deny"] and pending["inputs"] == ["reason"]
    assert "Reason (required to deny)" in pending["text"]
    strict = card_renderer.render(CASES["note-approval_needed-strict"]())
    assert "Reason (required)" in strict["text"]
    decided = card_renderer.render(CASES["update-approved"]())
    assert decided["actions"] == [] and decided["inputs"] == []


# --- clicks: the verb and data onExecuteAction gets ----------------------------------------------


def executed(
    card_renderer: SyncCardRenderer,
    card: Card,
    title: str,
    inputs: dict[str, str] | None = None,
    **kw: Any,
) -> dict[str, Any]:
    result = card_renderer.click(card, title, inputs, **kw)
    assert result["warnings"] == []
    action = result["executed"]
    assert action is not None, f"clicking {title!r} ran no action"
    assert action["type"] == "Action.Execute"
    return {"verb": action["verb"], "data": action["data"]}


def test_approve_and_deny_carry_the_request_and_the_reason(card_renderer: SyncCardRenderer) -> None:
    for name in ("note-approval_needed-pending", "note-approval_needed-strict"):
        card = CASES[name]()
        assert executed(card_renderer, card, "Approve", {teams.REASON_INPUT: "ok"}) == {
            "verb": v.APPROVE,
            "data": {"request": "R-7K2Q", "reason": "ok"},
        }
        assert executed(card_renderer, card, "Deny", {teams.REASON_INPUT: "not today"}) == {
            "verb": v.DENY,
            "data": {"request": "R-7K2Q", "reason": "not today"},
        }
        # An empty input is left out of data (the handler reads the reason with .get()),
        # unless the role asks approvers for a reason: then the client stops the click.
        if name.endswith("strict"):
            assert card_renderer.click(card, "Approve")["executed"] is None
        else:
            assert executed(card_renderer, card, "Approve") == {
                "verb": v.APPROVE,
                "data": {"request": "R-7K2Q"},
            }


def test_approver_list_buttons_share_the_one_reason_input(card_renderer: SyncCardRenderer) -> None:
    card = CASES["requests-for-approver"]()
    listed = {"shown": "R-7K2Q,R-8XYZ,R-7K2Q"}  # the ids the list shows, to redraw it
    assert executed(card_renderer, card, "Deny", {"reason": "no"}, match={"request": "R-8XYZ"}) == {
        "verb": v.DENY,
        "data": {"request": "R-8XYZ", "reason": "no", **listed},
    }
    assert executed(
        card_renderer, card, "Approve", {"reason": "fine"}, match={"request": "R-7K2Q"}
    ) == {"verb": v.APPROVE, "data": {"request": "R-7K2Q", "reason": "fine", **listed}}


def test_required_inputs_are_checked_by_the_renderer(card_renderer: SyncCardRenderer) -> None:
    """isRequired inputs: an empty one stops the click in the client, with its message."""
    strict = CASES["note-approval_needed-strict"]()
    assert card_renderer.click(strict, "Approve")["executed"] is None
    assert executed(card_renderer, strict, "Approve", {teams.REASON_INPUT: "ok"})["data"] == {
        "request": "R-7K2Q",
        "reason": "ok",
    }
    form = CASES["form-required"]()
    assert card_renderer.click(form, "Request", {teams.DURATION_INPUT: "1h"})["executed"] is None
    sent = executed(
        card_renderer,
        form,
        "Request",
        {teams.JUSTIFICATION_INPUT: "keys", teams.TICKET_INPUT: "INC-1"},
    )
    assert sent["data"][teams.JUSTIFICATION_INPUT] == "keys"


def test_a_redrawn_approvals_list_keeps_its_pending_row(card_renderer: SyncCardRenderer) -> None:
    card = CASES["requests-for-approver-redrawn"]()
    assert executed(card_renderer, card, "Approve", {"reason": "fine"}) == {
        "verb": v.APPROVE,
        "data": {"request": "R-8XYZ", "reason": "fine", "shown": "R-7K2Q,R-8XYZ"},
    }


def test_requester_buttons(card_renderer: SyncCardRenderer) -> None:
    assert executed(card_renderer, CASES["requests-mine"](), "Cancel") == {
        "verb": v.CANCEL,
        "data": {"request": "R-7K2Q"},
    }
    assert executed(card_renderer, CASES["note-submitted-pending"](), "Cancel request") == {
        "verb": v.CANCEL,
        "data": {"request": "R-7K2Q"},
    }
    # the warning offers more time; the end offers to ask again
    assert executed(card_renderer, CASES["note-expiring-bare"](), "Extend") == {
        "verb": v.EXTEND,
        "data": {"role": "global-admin"},
    }
    # an assignment nearing its end offers Renew (selfRenew)
    assert executed(card_renderer, CASES["note-renewable-bare"](), "Renew") == {
        "verb": v.RENEW,
        "data": {"role": "global-admin"},
    }
    assert executed(card_renderer, CASES["note-expired-bare"](), "Request again") == {
        "verb": v.REQUEST_AGAIN,
        "data": {"role": "global-admin"},
    }


def test_role_buttons_including_the_confirmed_deactivate(card_renderer: SyncCardRenderer) -> None:
    card = CASES["roles"]()
    assert executed(card_renderer, card, "Activate") == {
        "verb": v.ACTIVATE,
        "data": {"role": "global-admin"},
    }
    assert card_renderer.click(card, "Deactivate")["executed"] is None  # only opens the card
    assert executed(card_renderer, card, "Deactivate now", via=("Deactivate",)) == {
        "verb": v.DEACTIVATE,
        "data": {"role": "helpdesk-admin"},
    }


def test_the_activation_form_submits_every_field(card_renderer: SyncCardRenderer) -> None:
    typed = {
        teams.ROLE_INPUT: "global-admin",
        teams.DURATION_INPUT: "2h",
        teams.JUSTIFICATION_INPUT: "INC-1 outage",
        teams.TICKET_INPUT: "INC0012345",
    }
    assert executed(card_renderer, CASES["form"](), "Request", typed) == {
        "verb": teams.SUBMIT_ACTIVATION,
        "data": typed,
    }
    # A preselected role is sent without touching it; empty fields are left out.
    assert executed(card_renderer, CASES["form-selected"](), "Request") == {
        "verb": teams.SUBMIT_ACTIVATION,
        "data": {"role": "global-admin"},
    }
    # After an error the form comes back filled in, and resubmits what was typed.
    assert executed(card_renderer, CASES["form-errors-and-values"](), "Request") == {
        "verb": teams.SUBMIT_ACTIVATION,
        "data": TYPED,
    }


# --- the clicks reach the engine through the real invoke handler ---------------------------------


@pytest.fixture
def invoke(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, Any]], Any]:
    """Feed {verb, data} to PimTeamsBot.on_invoke_activity as Teams sends it; return the engine
    call it made first as (name, kwargs), with the engine replaced by recorders that refuse."""
    calls: list[tuple[str, dict[str, Any]]] = []

    async def who(*_: Any) -> str:
        return "carol@contoso.com"

    def recorder(name: str) -> Callable[..., Any]:
        async def record(_uow: Any, _clock: Any = None, **kwargs: Any) -> Any:
            calls.append((name, kwargs))
            if name == "activation_form":
                return FORM
            raise PimError(f"recorded {name}")

        return record

    monkeypatch.setattr(teams_bot, "identify", who)
    for module, name in (
        (teams_bot, "decide"),
        (teams_bot, "cancel_request"),
        (teams_bot, "deactivate"),
        (forms, "request_activation"),
        (teams_bot, "activation_form"),
    ):
        monkeypatch.setattr(module, name, recorder(name))
    bot = teams_bot.PimTeamsBot(
        SimpleNamespace(
            uow=None,
            clock=None,  # type: ignore[arg-type]
            poke=lambda: None,
            groups=None,
        )
    )

    async def send(action: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        activity = Activity(
            type="invoke",
            name="adaptiveCard/action",
            value={"action": {"type": "Action.Execute", **action}, "trigger": "manual"},
        )
        calls.clear()
        response = await bot.on_invoke_activity(TurnContext(SimpleNamespace(), activity))
        assert response is not None and response.status == 200
        assert "not known" not in str(response.body)
        assert calls, "the handler made no engine call"
        return calls[0]  # a refused submit then redraws the form: a second call

    return send


async def test_rendered_clicks_reach_the_engine_call_they_mean(
    card_renderer: SyncCardRenderer, invoke: Callable[[dict[str, Any]], Any]
) -> None:
    pending = CASES["note-approval_needed-pending"]()
    name, kw = await invoke(executed(card_renderer, pending, "Approve", {"reason": "ok"}))
    assert (name, kw["request_id"], kw["approve"], kw["justification"]) == (
        "decide",
        "R-7K2Q",
        True,
        "ok",
    )
    name, kw = await invoke(executed(card_renderer, pending, "Deny", {"reason": "no"}))
    assert (name, kw["request_id"], kw["approve"], kw["justification"]) == (
        "decide",
        "R-7K2Q",
        False,
        "no",
    )
    name, kw = await invoke(executed(card_renderer, pending, "Approve"))
    assert (name, kw["request_id"], kw["approve"], kw["justification"]) == (
        "decide",
        "R-7K2Q",
        True,
        None,
    )

    name, kw = await invoke(executed(card_renderer, CASES["requests-mine"](), "Cancel"))
    assert (name, kw["request_id"]) == ("cancel_request", "R-7K2Q")
    name, kw = await invoke(
        executed(card_renderer, CASES["roles"](), "Deactivate now", via=("Deactivate",))
    )
    assert (name, kw["role"]) == ("deactivate", "helpdesk-admin")
    name, _ = await invoke(executed(card_renderer, CASES["roles"](), "Activate"))
    assert name == "activation_form"

    typed = {
        "role": "global-admin",
        "duration": "2h",
        "justification": "INC-1 outage",
        "ticket": "INC0012345",
    }
    name, kw = await invoke(executed(card_renderer, CASES["form"](), "Request", typed))
    ask = kw["ask"]
    assert name == "request_activation"
    assert (ask.role, ask.duration, ask.justification) == (
        "global-admin",
        timedelta(hours=2),
        "INC-1 outage",
    )
    assert ask.ticket is not None and "INC0012345" in repr(ask.ticket)


def test_review_decide_sends_the_item_and_only_its_own_reason(
    card_renderer: SyncCardRenderer,
) -> None:
    card = CASES["review-open"]()
    assert executed(
        card_renderer,
        card,
        "Deny",
        {"reason-12": "left the team"},
        via=(("Decide", {"id": "decide-12"}),),
        match={"item": "12"},
    ) == {"verb": v.REVIEW_DENY, "data": {"item": "12", "reason-12": "left the team"}}
    strict = CASES["review-strict"]()
    refused = card_renderer.click(
        strict, "Approve", {}, via=(("Decide", {"id": "decide-12"}),), match={"item": "12"}
    )
    assert refused["executed"] is None  # the required reason stops the click
