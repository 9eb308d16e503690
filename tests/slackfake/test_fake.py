"""The fake Slack Web API and the signing helpers, checked against the real slack_sdk and Bolt."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from .server import FakeSlackAPI
from .signing import (
    app_home_opened,
    block_action,
    select_value,
    sign,
    slash_command,
    text_value,
    url_verification,
    view_submission,
)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Approve?*"}}]


@pytest.fixture
async def fake():
    async with FakeSlackAPI() as fake:
        fake.add_user(id="U0BOB", email="bob@contoso.com", name="Bob Builder")
        yield fake


@pytest.fixture
async def client(fake):
    return AsyncWebClient(token="xoxb-test", base_url=fake.base_url)


async def test_post_message_to_user_lands_in_dm_and_is_recorded(fake, client):
    assert fake.base_url.startswith("http://127.0.0.1:") and fake.base_url.endswith("/api/")
    first = await client.chat_postMessage(channel="U0BOB", text="hi", blocks=BLOCKS)
    second = await client.chat_postMessage(channel="C1", text="again")
    assert first["channel"] == "D0BOB" and second["channel"] == "C1"
    assert first["ts"] == "1700000000.000100" and float(second["ts"]) > float(first["ts"])
    [call] = await fake.wait_for("chat.postMessage", where=lambda c: c.args["channel"] == "U0BOB")
    assert call.args["blocks"] == BLOCKS and call.ok
    assert call.headers["authorization"] == "Bearer xoxb-test"
    assert fake.messages_to("U0BOB") == fake.messages_to("D0BOB") == [call]


async def test_form_encoded_json_fields_are_decoded(fake, client):
    await client.api_call(
        "chat.postMessage", data={"channel": "C1", "text": "x", "blocks": json.dumps(BLOCKS)}
    )
    [call] = fake.calls("chat.postMessage")
    assert call.args["blocks"] == BLOCKS and call.args["text"] == "x"


async def test_update_needs_the_dm_channel_and_a_posted_ts(fake, client):
    posted = await client.chat_postMessage(channel="U0BOB", text="card")
    with pytest.raises(SlackApiError) as e:
        await client.chat_update(channel="U0BOB", ts=posted["ts"], text="x")
    assert e.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError, match="message_not_found"):
        await client.chat_update(channel="D0BOB", ts="1.2", text="x")
    await client.chat_update(channel=posted["channel"], ts=posted["ts"], text="Approved", blocks=[])
    assert len(fake.updates_of("U0BOB", posted["ts"])) == 1
    assert fake.message("D0BOB", posted["ts"])["text"] == "Approved"


async def test_429_then_success(fake, client):
    fake.fail_next("chat.postMessage", status=429, retry_after=1)
    with pytest.raises(SlackApiError) as e:
        await client.chat_postMessage(channel="U0BOB", text="hi")
    assert e.value.response.status_code == 429
    assert e.value.response.headers["Retry-After"] == "1"
    assert e.value.response["error"] == "ratelimited"
    assert (await client.chat_postMessage(channel="U0BOB", text="hi"))["ok"]
    assert [c.status for c in fake.calls("chat.postMessage")] == [429, 200]
    assert len(fake.messages_to("U0BOB")) == 1


async def test_slack_sdk_rate_limit_handler_honours_retry_after(fake):
    client = AsyncWebClient(
        token="xoxb-test",
        base_url=fake.base_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    fake.fail_next("chat.postMessage", status=429, retry_after=0)
    assert (await client.chat_postMessage(channel="C1", text="hi"))["ok"]
    assert len(fake.calls("chat.postMessage")) == 2


async def test_queued_errors_and_unknown_methods(fake, client):
    fake.fail_next("chat.postMessage", error="channel_not_found")
    fake.fail_next("chat.postMessage", error="is_archived")
    for error in ("channel_not_found", "is_archived"):
        with pytest.raises(SlackApiError, match=error):
            await client.chat_postMessage(channel="C1", text="hi")
    assert (await client.chat_postMessage(channel="C1", text="hi"))["ok"]
    with pytest.raises(SlackApiError, match="unknown_method"):
        await client.api_call("no.such.method")
    assert fake.calls("no.such.method")


async def test_lookup_by_email_and_users_info(fake, client):
    found = await client.users_lookupByEmail(email="Bob@contoso.com")
    assert found["user"]["id"] == "U0BOB"
    with pytest.raises(SlackApiError, match="users_not_found"):
        await client.users_lookupByEmail(email="eve@contoso.com")
    info = await client.users_info(user="U0BOB")
    assert info["user"]["profile"]["email"] == "bob@contoso.com"
    assert info["user"]["real_name"] == "Bob Builder"
    with pytest.raises(SlackApiError, match="user_not_found"):
        await client.users_info(user="U0EVE")


async def test_other_methods(fake, client):
    assert (await client.auth_test())["user_id"] == "UBOT"
    assert (await client.conversations_open(users="U0BOB"))["channel"]["id"] == "D0BOB"
    assert (await client.chat_postEphemeral(channel="C1", user="U0BOB", text="x"))["message_ts"]
    view = {
        "type": "modal",
        "callback_id": "cb",
        "title": {"type": "plain_text", "text": "T"},
        "blocks": [],
    }
    opened = await client.views_open(trigger_id="1.2.3", view=view)
    assert opened["view"]["id"].startswith("V") and opened["view"]["callback_id"] == "cb"
    updated = await client.views_update(view_id=opened["view"]["id"], view=view)
    assert updated["view"]["id"] == opened["view"]["id"]
    home = {"type": "home", "blocks": []}
    assert (await client.views_publish(user_id="U0BOB", view=home))["view"]["type"] == "home"
    [call] = fake.calls("views.publish")
    assert call.args["view"] == home


async def test_wait_for_times_out_listing_what_it_saw(fake, client):
    await client.auth_test()
    with pytest.raises(AssertionError, match=r"chat\.update[\s\S]*auth\.test"):
        await fake.wait_for("chat.update", timeout=0.05)
    fake.clear()
    assert fake.calls() == []


async def test_response_url_posts_are_recorded(fake):
    resp = await AsyncWebhookClient(fake.response_url("abc")).send(text="done")
    assert resp.status_code == 200
    [call] = fake.calls("response_url")
    assert call.args["text"] == "done" and call.path == "/response/abc"


def test_signatures_are_accepted_by_slack_sdk():
    verifier = SignatureVerifier(SECRET)
    for body in (
        slash_command("activate Reader", user_id="U0BOB"),
        block_action("approve", "42", user_id="U0ALICE"),
        app_home_opened("U0BOB"),
        url_verification("xyz"),
    ):
        headers = sign(body, SECRET)
        assert verifier.is_valid_request(body, headers)
        assert not verifier.is_valid_request(body + b" ", headers)
        assert not SignatureVerifier("other").is_valid_request(body, headers)
    stale = int(time.time()) - 6 * 60
    body = slash_command("list", user_id="U0BOB")
    assert not verifier.is_valid_request(body, sign(body, SECRET, timestamp=stale))
    assert sign(app_home_opened("U1"), SECRET)["Content-Type"] == "application/json"


def bolt_app(fake: FakeSlackAPI) -> tuple[AsyncApp, web.Application]:
    bolt = AsyncApp(
        client=AsyncWebClient(token="xoxb-test", base_url=fake.base_url), signing_secret=SECRET
    )

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    app = web.Application()
    app.router.add_post("/slack/events", events)
    return bolt, app


async def test_through_bolt(fake):
    """Bolt against the fake: auth.test once at the first request, respond() to response_url,
    forged and stale requests refused with 401 and nothing sent."""
    bolt, app = bolt_app(fake)

    @bolt.command("/pim")
    async def pim(ack, respond, command):
        await ack()
        await respond(f"you said {command['text']}")

    async with TestClient(TestServer(app, host="127.0.0.1")) as http:

        async def send(body: bytes, headers: dict[str, str]) -> int:
            return (await http.post("/slack/events", data=body, headers=headers)).status

        forged = slash_command("list", user_id="U0BOB", response_url=fake.response_url())
        assert await send(forged, sign(forged, "wrong-secret")) == 401
        stale = sign(forged, SECRET, timestamp=int(time.time()) - 400)
        assert await send(forged, stale) == 401
        assert fake.calls() == []

        for text in ("list", "history"):
            body = slash_command(text, user_id="U0BOB", response_url=fake.response_url())
            assert await send(body, sign(body, SECRET)) == 200
        said = await fake.wait_for("response_url", count=2)
        assert [c.args["text"] for c in said] == ["you said list", "you said history"]
        assert len(fake.calls("auth.test")) == 1

        body = url_verification("xyz")
        resp = await http.post("/slack/events", data=body, headers=sign(body, SECRET))
        assert (await resp.json()) == {"challenge": "xyz"}

        # Bolt quirk (slack_bolt 1.30): a form body containing "payload" anywhere is parsed as
        # an interaction payload, so this command reaches no listener (Bolt answers 404).
        body = slash_command("activate Reader fix payload", user_id="U0BOB")
        assert await send(body, sign(body, SECRET)) == 404


async def test_builders_reach_bolt_listeners(fake):
    bolt, app = bolt_app(fake)

    @bolt.action("approve")
    async def approve(ack, body, respond, client):
        await ack()
        await respond(f"{body['user']['id']} approved {body['actions'][0]['value']}")
        await client.chat_update(
            channel=body["channel"]["id"], ts=body["message"]["ts"], text="Approved"
        )

    @bolt.view("activate")
    async def submitted(ack, view):
        values = view["state"]["values"]
        role = values["role"]["r"]["selected_option"]["value"]
        why = values["why"]["w"]["value"]
        await ack(response_action="errors", errors={"why": f"{role} needs {why!r}"})

    @bolt.event("app_home_opened")
    async def home(event, client):
        await client.views_publish(user_id=event["user"], view={"type": "home", "blocks": []})

    async with TestClient(TestServer(app, host="127.0.0.1")) as http:

        async def send(body: bytes) -> ClientResponse:
            return await http.post("/slack/events", data=body, headers=sign(body, SECRET))

        posted = await AsyncWebClient(token="x", base_url=fake.base_url).chat_postMessage(
            channel="U0ALICE", text="card"
        )
        click = block_action(
            "approve",
            "req-7",
            user_id="U0ALICE",
            channel_id=posted["channel"],
            message=posted["message"],
            response_url=fake.response_url("c"),
        )
        assert (await send(click)).status == 200
        [said] = await fake.wait_for("response_url")
        assert said.args["text"] == "U0ALICE approved req-7"
        await fake.wait_for("chat.update", where=lambda c: c.ok)
        assert fake.message("U0ALICE", posted["ts"])["text"] == "Approved"

        state = {"role": {"r": select_value("Reader")}, "why": {"w": text_value("<!channel>")}}
        resp = await send(view_submission("activate", state, user_id="U0BOB"))
        assert (await resp.json()) == {
            "response_action": "errors",
            "errors": {"why": "Reader needs '<!channel>'"},
        }

        assert (await send(app_home_opened("U0BOB"))).status == 200
        [published] = await fake.wait_for("views.publish")
        assert published.args["user_id"] == "U0BOB"


async def test_metadata_is_kept_and_history_returns_it_only_when_asked(fake, client):
    meta = {"event_type": "pim_outbox", "event_payload": {"outbox_id": 7}}
    posted = await client.chat_postMessage(channel="U0BOB", text="one", metadata=meta)
    await client.chat_postMessage(channel="U0BOB", text="two")
    opened = await client.conversations_open(users="U0BOB")
    assert opened["channel"]["id"] == posted["channel"] == "D0BOB"
    page = await client.conversations_history(channel="D0BOB", include_all_metadata=True)
    assert [m["text"] for m in page["messages"]] == ["two", "one"]  # newest first
    assert page["messages"][1]["metadata"] == meta and "metadata" not in page["messages"][0]
    plain = await client.conversations_history(channel="D0BOB")
    assert all("metadata" not in m for m in plain["messages"])
    first = await client.conversations_history(channel="D0BOB", limit=1)
    assert first["has_more"] and first["messages"][0]["text"] == "two"
    rest = await client.conversations_history(
        channel="D0BOB", limit=1, cursor=first["response_metadata"]["next_cursor"]
    )
    assert [m["text"] for m in rest["messages"]] == ["one"] and not rest["has_more"]
    with pytest.raises(SlackApiError) as refused:
        await client.conversations_history(channel="U0BOB")
    assert refused.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError) as bad:
        await client.chat_postMessage(channel="C1", text="x", metadata={"event_type": "x"})
    assert bad.value.response["error"] == "invalid_metadata_format"


async def test_posting_limit_per_channel_with_a_burst():
    async with FakeSlackAPI(post_rate=1.0, post_burst=2) as fake:
        client = AsyncWebClient(token="xoxb-test", base_url=fake.base_url)
        for _ in range(2):
            await client.chat_postMessage(channel="U0BOB", text="burst")
        with pytest.raises(SlackApiError) as limited:
            await client.chat_postMessage(channel="D0BOB", text="one too many")  # same DM
        assert limited.value.response.status_code == 429
        assert limited.value.response.headers["Retry-After"] == "1"
        await client.chat_postMessage(channel="C1", text="another channel is not limited")
        await asyncio.sleep(1.0)
        await client.chat_postMessage(channel="U0BOB", text="a second later")
        assert fake.rate_limited() == 1 and len(fake.messages_to("U0BOB")) == 3


async def test_workspace_limit_and_the_environment_knob(monkeypatch):
    monkeypatch.setenv("SLACKFAKE_WORKSPACE_RATE", "2")
    monkeypatch.setenv("SLACKFAKE_WORKSPACE_BURST", "3")
    async with FakeSlackAPI() as fake:
        client = AsyncWebClient(token="xoxb-test", base_url=fake.base_url)
        for i in range(3):
            await client.chat_postMessage(channel=f"C{i}", text="fine")
        with pytest.raises(SlackApiError) as limited:
            await client.chat_postMessage(channel="C9", text="over the workspace's limit")
        assert limited.value.response.status_code == 429
        assert fake.rate_limited() == 1
