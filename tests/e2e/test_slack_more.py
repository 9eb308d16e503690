"""More of the Slack loop, as a user sees it: App Home, the activation modal, cancel, time-out,
signatures, refusals, hostile text, rate limits, people found by email, and the buttons on
the requester's own messages.

Every Block Kit payload the fake Web API received in a test is validated with slack_sdk at the
end of that test (the autouse fixture `_block_kit_is_valid`).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View
from sqlalchemy import func, select

from cards import slack as cards
from cards import views as v
from storage.models import AuditEvent, OutboxMessage, Principal, ScheduleRequest
from tests.e2e.conftest import SlackBot, drained
from tests.slackfake import (
    Call,
    FakeSlackAPI,
    app_home_opened,
    block_action,
    dm_id,
    select_value,
    slash_command,
    text_value,
)
from vocab.states import Action, Status

HOSTILE = "<!channel> <https://evil|click> & <@U0ALICE>"
HOSTILE_SHOWN = "&lt;!channel&gt; &lt;https://evil|click&gt; &amp; &lt;@U0ALICE&gt;"
BLOCK_METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral", "response_url")
VIEW_METHODS = ("views.open", "views.publish", "views.update", "views.push")


# --- helpers -----------------------------------------------------------------------------------


def assert_valid_block_kit(fake: FakeSlackAPI) -> int:
    """Run slack_sdk's checks (`to_dict()`) on every block and view the fake received."""
    checked = 0
    for call in fake.calls():
        if call.method in BLOCK_METHODS:
            for raw in call.args.get("blocks") or []:
                block = Block.parse(raw)
                assert block is not None, f"{call.method}: unknown block {raw}"
                block.to_dict()
                checked += 1
        elif call.method in VIEW_METHODS:
            View(**call.args["view"]).to_dict()
            checked += 1
    return checked


@pytest.fixture(autouse=True)
async def _block_kit_is_valid(slack: SlackBot) -> AsyncIterator[None]:
    yield
    assert_valid_block_kit(slack.fake)


def dump(obj: Any) -> str:
    """Everything a person can read in a message or view (its JSON, unescaped unicode)."""
    return json.dumps(obj, ensure_ascii=False)


def buttons(blocks: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(action_id, value) of every button, in actions blocks and as section accessories."""
    found = []
    for b in blocks:
        elements = b.get("elements", []) if b["type"] == "actions" else [b.get("accessory") or {}]
        found += [(e["action_id"], e["value"]) for e in elements if e.get("type") == "button"]
    return found


def to(target: str) -> Callable[[Call], bool]:
    """wait_for predicate: a message to this user (or their DM) or channel."""
    return lambda c: dm_id(str(c.args.get("channel", ""))) == dm_id(target)


def published_for(user: str) -> Callable[[Call], bool]:
    return lambda c: c.args.get("user_id") == user


def home_with(user: str, button: tuple[str, str]) -> Callable[[Call], bool]:
    return lambda c: c.args.get("user_id") == user and button in buttons(c.args["view"]["blocks"])


async def reply(slack: SlackBot, user: str, text: str, token: str) -> dict[str, Any]:
    resp = await slack.command(user, text, token=token)
    assert resp.status == 200
    (answer,) = await slack.replies(token)
    assert answer["response_type"] == "ephemeral"
    return answer


async def ask(slack: SlackBot, text: str, *, user: str = "U0BOB", token: str = "ask") -> str:
    """Run a `/pim activate …` that needs approval; return the new request id."""
    answer = await reply(slack, user, text, token)
    assert "waiting for approval" in answer["text"], answer
    return answer["text"].split("Request ")[1].split(" ")[0]


async def counts(slack: SlackBot) -> dict[str, int]:
    async with slack.runtime.uow.transaction() as s:
        return {
            m.__name__: await s.scalar(select(func.count()).select_from(m)) or 0
            for m in (ScheduleRequest, AuditEvent, OutboxMessage, Principal)
        }


async def audit_events(slack: SlackBot, action: str) -> list[AuditEvent]:
    async with slack.runtime.uow.transaction() as s:
        return list(
            (
                await s.scalars(
                    select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
                )
            ).all()
        )


async def self_activations(slack: SlackBot) -> list[ScheduleRequest]:
    async with slack.runtime.uow.transaction() as s:
        return list(
            (
                await s.scalars(
                    select(ScheduleRequest).where(ScheduleRequest.action == Action.SELF_ACTIVATE)
                )
            ).all()
        )


def modal_values(
    role: str | None,
    duration: str | None = None,
    justification: str | None = None,
    ticket: str | None = None,
) -> dict[str, dict[str, Any]]:
    return {
        cards.ROLE_BLOCK: {cards.ROLE_ACTION: select_value(role)},
        cards.DURATION_BLOCK: {cards.DURATION_ACTION: text_value(duration)},
        cards.JUSTIFICATION_BLOCK: {cards.JUSTIFICATION_ACTION: text_value(justification)},
        cards.TICKET_BLOCK: {cards.TICKET_ACTION: text_value(ticket)},
    }


def sections_of(view: dict[str, Any]) -> str:
    return "\n".join(b["text"]["text"] for b in view["blocks"] if "text" in b)


BOB_ROLES = {"global-admin", "secret-admin", "quick", "slow-approval"}


# --- App Home ----------------------------------------------------------------------------------


async def test_app_home_shows_roles_requests_and_approvals_and_follows_changes(slack: SlackBot):
    resp = await slack.post(app_home_opened("U0BOB"))
    assert resp.status == 200
    (published,) = await slack.fake.wait_for("views.publish", where=published_for("U0BOB"))
    home = published.args["view"]
    assert home["type"] == "home"
    headers = [b["text"]["text"] for b in home["blocks"] if b["type"] == "header"]
    assert headers == ["My roles", "My requests", "Approve requests"]
    assert {value for action, value in buttons(home["blocks"]) if action == v.ACTIVATE} == BOB_ROLES
    assert "Quick Role" in sections_of(home) and "needs approval" in sections_of(home)
    assert "You have no pending requests." in sections_of(home)

    # Bob asks; Carol (an approver) opens her Home and finds the request with its buttons.
    request_id = await ask(slack, "activate global-admin 1h rotate the keys")
    await slack.fake.wait_for("chat.postMessage", where=to("U0CAROL"))
    # (her Home was already redrawn when the card reached her; opening it publishes again)
    seen = len([c for c in slack.fake.calls("views.publish") if published_for("U0CAROL")(c)])
    await slack.post(app_home_opened("U0CAROL"))
    carol = await slack.fake.wait_for(
        "views.publish", count=seen + 1, where=published_for("U0CAROL")
    )
    carol_home = carol[-1].args["view"]
    assert (v.APPROVE, request_id) in buttons(carol_home["blocks"])
    assert (v.DENY, request_id) in buttons(carol_home["blocks"])
    assert "rotate the keys" in sections_of(carol_home)

    # Bob's own Home, redrawn after his request, lists it under My requests with Cancel.
    mine = await slack.fake.wait_for(
        "views.publish",
        where=lambda c: (
            published_for("U0BOB")(c)
            and (v.CANCEL, request_id) in buttons(c.args["view"]["blocks"])
        ),
    )
    assert (v.ACTIVATE, "global-admin") not in buttons(mine[-1].args["view"]["blocks"])

    # A change that concerns Bob redraws his Home: quick now shows Deactivate.
    answer = await reply(slack, "U0BOB", "activate quick 10m", "quick")
    assert answer["text"].startswith("Quick Role is active now.")
    refreshed = await slack.fake.wait_for(
        "views.publish",
        where=lambda c: (
            published_for("U0BOB")(c)
            and (v.DEACTIVATE, "quick") in buttons(c.args["view"]["blocks"])
        ),
    )
    assert "Active until" in sections_of(refreshed[-1].args["view"])


async def test_app_home_of_approvers_drops_a_request_once_it_is_decided(slack: SlackBot):
    request_id = await ask(slack, "activate global-admin 1h rotate the keys")
    for user, button in (("U0CAROL", v.APPROVE), ("U0ERIN", v.APPROVE), ("U0BOB", v.CANCEL)):
        await slack.fake.wait_for("views.publish", where=home_with(user, (button, request_id)))
    await drained(slack.runtime)
    seen = len(slack.fake.calls("views.publish"))
    await slack.click("U0BOB", v.CANCEL, request_id, token="cancel")
    await slack.replies("cancel")
    await slack.fake.wait_for("chat.update", count=4)
    await drained(slack.runtime)
    later = slack.fake.calls("views.publish")[seen:]
    for user, empty in (
        ("U0CAROL", "Nothing is waiting for you."),
        ("U0ERIN", "Nothing is waiting for you."),
        ("U0BOB", "You have no pending requests."),
    ):
        (home,) = [c for c in later if published_for(user)(c)]
        assert empty in sections_of(home.args["view"])
        assert request_id not in dump(home.args["view"])


# --- the activation modal ------------------------------------------------------------------------


async def open_form(slack: SlackBot) -> dict[str, Any]:
    resp = await slack.command("U0BOB", "activate", token="form")
    assert resp.status == 200
    (opened,) = await slack.fake.wait_for("views.open")
    assert opened.args["trigger_id"] == "1.2.3"
    return opened.args["view"]


async def test_activate_without_role_opens_the_modal_and_errors_show_inline(slack: SlackBot):
    modal = await open_form(slack)
    assert modal["callback_id"] == cards.ACTIVATION_MODAL
    role_block = next(b for b in modal["blocks"] if b.get("block_id") == cards.ROLE_BLOCK)
    options = role_block["element"]["options"]
    assert {o["value"] for o in options} == BOB_ROLES
    by_role = {o["value"]: o["text"]["text"] for o in options}
    assert by_role["quick"] == "Quick Role · max 1h"
    assert by_role["global-admin"] == "Global Administrator · max 8h · needs approval"
    assert slack.fake.calls("response_url") == []  # the modal is the answer

    async def errors_for(values: dict) -> dict[str, str]:
        resp = await slack.submit("U0BOB", cards.ACTIVATION_MODAL, values)
        assert resp.status == 200
        body = await resp.json()
        assert body["response_action"] == "errors", body
        return body["errors"]

    bad = await errors_for(modal_values("quick", "soon"))
    assert list(bad) == [cards.DURATION_BLOCK]
    assert bad[cards.DURATION_BLOCK] == (
        "'soon' is not a duration; use e.g. 90m, 2h, 1h30m, 1d or PT2H"
    )
    too_long = await errors_for(modal_values("quick", "2h"))
    assert too_long == {
        cards.DURATION_BLOCK: "Quick Role can be activated for 1s to 1h; you asked for 2h."
    }
    why = await errors_for(modal_values("secret-admin", "1h"))
    assert list(why) == [cards.JUSTIFICATION_BLOCK]
    assert "needs a justification" in why[cards.JUSTIFICATION_BLOCK]
    nothing = await errors_for(modal_values(None, "1h"))
    assert list(nothing) == [cards.ROLE_BLOCK]
    assert await self_activations(slack) == []
    assert slack.fake.calls("chat.postMessage") == []

    # Valid: the modal closes (an empty 200) and Bob is told by DM.
    ok = await slack.submit(
        "U0BOB", cards.ACTIVATION_MODAL, modal_values("quick", "5m", ticket="jira:OPS-12")
    )
    assert ok.status == 200 and await ok.text() == ""
    (activated,) = await slack.fake.wait_for(
        "chat.postMessage", where=lambda c: to("U0BOB")(c) and "is active until" in dump(c.args)
    )
    assert "Quick Role" in dump(activated.args)

    ok = await slack.submit(
        "U0BOB",
        cards.ACTIVATION_MODAL,
        modal_values("secret-admin", "1h", justification="quarterly audit"),
    )
    assert ok.status == 200 and await ok.text() == ""
    (submitted,) = await slack.fake.wait_for(
        "chat.postMessage", where=lambda c: to("U0BOB")(c) and "waiting for" in dump(c.args)
    )
    (req,) = [r for r in await self_activations(slack) if r.role_id == "secret-admin"]
    assert buttons(submitted.args["blocks"]) == [(v.CANCEL, req.short_id)]
    assert "quarterly audit" in dump(submitted.args)
    await slack.fake.wait_for("chat.postMessage", where=to("U0CAROL"))


async def test_request_again_opens_the_modal_with_the_role_chosen(slack: SlackBot):
    resp = await slack.click("U0BOB", v.REQUEST_AGAIN, "quick", token="again")
    assert resp.status == 200
    (opened,) = await slack.fake.wait_for("views.open")
    modal = opened.args["view"]
    assert modal["callback_id"] == cards.ACTIVATION_MODAL
    role_block = next(b for b in modal["blocks"] if b.get("block_id") == cards.ROLE_BLOCK)
    assert role_block["element"]["initial_option"]["value"] == "quick"
    assert slack.fake.calls("response_url") == []


# --- cancel, time-out, deactivate --------------------------------------------------------------


async def test_cancel_from_the_submitted_message_redraws_every_card(slack: SlackBot):
    request_id = await ask(slack, "activate global-admin 1h rotate the keys")
    await slack.fake.wait_for("chat.postMessage", count=4)
    (submitted,) = slack.fake.messages_to("U0BOB")
    assert buttons(submitted.args["blocks"]) == [(v.CANCEL, request_id)]
    resp = await slack.click(
        "U0BOB", v.CANCEL, request_id, posted=submitted.response, token="cancel"
    )
    assert resp.status == 200
    (answer,) = await slack.replies("cancel")
    assert answer["response_type"] == "ephemeral"
    assert answer["text"] == f"Request {request_id} is canceled."

    updates = await slack.fake.wait_for("chat.update", count=4)
    posted = [c.response for c in slack.fake.calls("chat.postMessage") if c.ok]
    assert {(c.args["channel"], c.args["ts"]) for c in updates} == {
        (p["channel"], p["ts"]) for p in posted
    }
    for p in posted:  # every copy as it stands now
        now = slack.fake.message(p["channel"], p["ts"])
        assert buttons(now["blocks"]) == []
        assert "Canceled by Bob Builder" in dump(now)
        assert "Request canceled" in dump(now["blocks"][0])
    async with slack.runtime.uow.transaction() as s:
        status = await s.scalar(
            select(ScheduleRequest.status).where(ScheduleRequest.short_id == request_id)
        )
    assert status == Status.CANCELED


async def test_a_request_nobody_decides_times_out_and_every_card_says_so(slack: SlackBot):
    started = time.monotonic()
    request_id = await ask(slack, "activate slow-approval 1h nightly batch is stuck")
    (card,) = await slack.fake.wait_for("chat.postMessage", where=to("U0CAROL"))
    (told,) = await slack.fake.wait_for(
        "chat.postMessage",
        where=lambda c: to("U0BOB")(c) and "timed out" in dump(c.args),
    )
    assert request_id in dump(told.args)
    redrawn = await slack.fake.wait_for(
        "chat.update", where=lambda c: c.args["ts"] == card.response["ts"]
    )
    assert time.monotonic() - started < 5
    now = slack.fake.message(card.response["channel"], card.response["ts"])
    assert buttons(now["blocks"]) == [] and buttons(redrawn[-1].args["blocks"]) == []
    assert "Timed out" in dump(now) and "nobody decided in time" in dump(now)


async def test_deactivate_button_from_roles(slack: SlackBot):
    answer = await reply(slack, "U0BOB", "activate quick 10m", "quick")
    assert answer["text"].startswith("Quick Role is active now.")
    roles = await reply(slack, "U0BOB", "roles", "roles")
    assert (v.DEACTIVATE, "quick") in buttons(roles["blocks"])
    await asyncio.sleep(1.1)  # quick: min_active_before_deactivate 1s
    resp = await slack.click("U0BOB", v.DEACTIVATE, "quick", token="off")
    assert resp.status == 200
    (done,) = await slack.replies("off")
    assert done["response_type"] == "ephemeral"
    assert done["text"] == "Quick Role is deactivated. Your access has ended."
    await slack.fake.wait_for(
        "chat.postMessage", where=lambda c: to("U0BOB")(c) and "deactivated" in dump(c.args)
    )
    assert await audit_events(slack, "role.deactivated")


async def test_the_word_payload_in_a_slash_command(slack: SlackBot):
    answer = await reply(slack, "U0BOB", "activate quick 1m fix the payload service", "payload")
    assert answer["text"].startswith("Quick Role is active now."), answer
    (req,) = await self_activations(slack)
    assert (req.role_id, req.justification, req.duration_seconds) == (
        "quick",
        "fix the payload service",
        60,
    )


# --- signatures --------------------------------------------------------------------------------


async def test_forged_or_stale_requests_are_refused_and_change_nothing(slack: SlackBot):
    before = await counts(slack)
    command = slash_command(
        "activate quick 1m", user_id="U0BOB", response_url=slack.fake.response_url("forged")
    )
    click = block_action(
        v.APPROVE, "R-AAAA", user_id="U0CAROL", response_url=slack.fake.response_url("forged")
    )
    for body in (command, click, app_home_opened("U0BOB")):
        forged = await slack.post(body, secret="not-the-secret")
        assert forged.status == 401
        stale = await slack.post(body, timestamp=int(time.time()) - 400)
        assert stale.status == 401
    # A refused request runs no listener; anything else would have queued outbox work.
    await drained(slack.runtime)
    assert slack.fake.calls() == []  # no Web API call at all, not even auth.test
    assert await counts(slack) == before
    # The same command, correctly signed, does go through.
    answer = await reply(slack, "U0BOB", "activate quick 1m", "real")
    assert answer["text"].startswith("Quick Role is active now.")


# --- refusals ----------------------------------------------------------------------------------


async def test_clicks_by_non_approvers_and_by_the_requester_are_refused_privately(slack: SlackBot):
    request_id = await ask(slack, "activate global-admin 1h rotate the keys")
    await slack.fake.wait_for("chat.postMessage", count=4)
    card = slack.fake.messages_to("U0CAROL")[0].response
    before = dump(slack.fake.message(card["channel"], card["ts"]))
    clicks = [
        ("U0DAVE", v.APPROVE, "not an approver"),
        ("U0ALICE", v.APPROVE, "not an approver"),
        ("U0ALICE", v.DENY, "not an approver"),
        ("U0BOB", v.APPROVE, "cannot approve your own request"),
    ]
    for user, action, why in clicks:
        token = f"{user}-{action}"
        resp = await slack.click(user, action, request_id, posted=card, token=token)
        assert resp.status == 200
        (answer,) = await slack.replies(token)
        assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
        assert why in answer["text"] and request_id in answer["text"]
    await drained(slack.runtime)  # a redraw would be outbox work
    assert slack.fake.calls("chat.update") == []
    assert slack.fake.calls("views.open") == []  # Deny's reason form is not offered either
    assert dump(slack.fake.message(card["channel"], card["ts"])) == before
    refused = await audit_events(slack, "approval.refused")
    assert [(e.actor, e.details["reason"], e.details["attempted"]) for e in refused] == [
        ("dave@contoso.com", "not_an_approver", "approve"),
        ("alice@contoso.com", "not_an_approver", "approve"),
        ("alice@contoso.com", "not_an_approver", "deny"),
        ("bob@contoso.com", "self_approval_forbidden", "approve"),
    ]
    assert all(e.details["request"] == request_id for e in refused)
    async with slack.runtime.uow.transaction() as s:
        status = await s.scalar(
            select(ScheduleRequest.status).where(ScheduleRequest.short_id == request_id)
        )
    assert status == Status.PENDING_APPROVAL


# --- hostile text ------------------------------------------------------------------------------

OURS = re.compile(r"<!date\^\d+\^\{date_short_pretty\} at \{time\}\|[^<>]*>")


async def test_hostile_text_is_escaped_everywhere(slack: SlackBot):
    request_id = await ask(slack, f"activate global-admin 1h {HOSTILE}")
    await slack.fake.wait_for("chat.postMessage", count=4)
    for target in ("U0CAROL", "U0ERIN", "C0APPROVALS", "U0BOB"):
        (card,) = slack.fake.messages_to(target)
        assert HOSTILE_SHOWN in dump(card.args)
    await slack.fake.wait_for(
        "views.publish",
        where=lambda c: published_for("U0CAROL")(c) and HOSTILE_SHOWN in dump(c.args),
    )
    await slack.click("U0CAROL", v.DENY, request_id, token="deny")
    (opened,) = await slack.fake.wait_for("views.open")
    assert HOSTILE_SHOWN in dump(opened.args["view"])
    resp = await slack.submit(
        "U0CAROL",
        cards.DECISION_MODAL,
        {cards.REASON_BLOCK: {cards.REASON_ACTION: text_value(f"no: {HOSTILE}")}},
        private_metadata=opened.args["view"]["private_metadata"],
    )
    assert resp.status == 200
    (told,) = await slack.fake.wait_for(
        "chat.postMessage", where=lambda c: to("U0BOB")(c) and "denied your request" in dump(c.args)
    )
    assert f"no: {HOSTILE_SHOWN}" in told.args["text"]
    await slack.fake.wait_for("chat.update", count=4)
    # and in the ephemeral answers: the approvals list, the audit trail
    await reply(slack, "U0ALICE", "audit", "audit")
    await reply(slack, "U0BOB", f"activate quick 1m {HOSTILE}", "quick")

    sent = [c for c in slack.fake.calls() if c.method in BLOCK_METHODS + VIEW_METHODS]
    assert len(sent) >= 15
    for call in sent:
        text = OURS.sub("", dump(call.args))
        for raw in ("<!", "<http", "<@"):
            assert raw not in text, f"{call.method} to {call.args.get('channel')}: {text}"


# --- rate limits -------------------------------------------------------------------------------


async def test_a_429_is_retried_after_retry_after_and_delivered_once(slack: SlackBot):
    slack.fake.fail_next("chat.postMessage", status=429, retry_after=1)
    await ask(slack, "activate secret-admin 1h quarterly audit")
    await slack.fake.wait_for("chat.postMessage", where=lambda c: to("U0CAROL")(c) and c.ok)
    await drained(slack.runtime)  # a duplicate would be a retry still queued, or sent by now
    to_carol = [c for c in slack.fake.calls("chat.postMessage") if to("U0CAROL")(c)]
    assert [c.status for c in to_carol] == [429, 200]
    assert len(slack.fake.messages_to("U0CAROL")) == 1
    refused, accepted = to_carol
    assert accepted.at - refused.at >= 0.95, "Retry-After: 1 was not honoured"
    assert len(slack.fake.messages_to("U0BOB")) == 1  # the submitted message, unaffected


# --- people ------------------------------------------------------------------------------------


async def test_people_are_found_by_email_and_strangers_refused(slack: SlackBot):
    # Dave has no slack_id in the policy. His "you are eligible" DM, sent at start-up, found
    # him with users.lookupByEmail and remembered him.
    (linked,) = await audit_events(slack, "principal.slack_id_linked")
    assert linked.target == "dave@contoso.com" and linked.details["slack_id"] == "U0DAVE"
    # Had that DM not gone out yet, his first command finds him with users.info.
    async with slack.runtime.uow.transaction() as s:
        dave = await s.scalar(select(Principal).where(Principal.email == "dave@contoso.com"))
        assert dave is not None and dave.slack_id == "U0DAVE"
        dave.slack_id = None
    answer = await reply(slack, "U0DAVE", "roles", "dave")
    assert "Global Administrator" in dump(answer)
    (info,) = slack.fake.calls("users.info")
    assert info.args["user"] == "U0DAVE"
    async with slack.runtime.uow.transaction() as s:
        dave = await s.scalar(select(Principal).where(Principal.email == "dave@contoso.com"))
        assert dave is not None and dave.slack_id == "U0DAVE"
    _, linked = await audit_events(slack, "principal.slack_id_linked")
    assert linked.target == "dave@contoso.com" and linked.details["slack_id"] == "U0DAVE"
    await reply(slack, "U0DAVE", "roles", "dave-again")
    assert len(slack.fake.calls("users.info")) == 1  # remembered

    before = await counts(slack)
    answer = await reply(slack, "U0ZED", "activate global-admin 1h let me in", "zed")
    assert answer["text"].endswith(
        "You are not set up in pim-bot yet. Ask a pim-bot admin to add you to the policy."
    )
    await slack.post(app_home_opened("U0ZED"))
    (home,) = await slack.fake.wait_for("views.publish", where=published_for("U0ZED"))
    assert "You are not set up in pim-bot yet" in dump(home.args["view"])
    assert await counts(slack) == before
    assert slack.fake.calls("chat.postMessage") == []
