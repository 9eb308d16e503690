"""The fake connector and activity builders, checked against the real botbuilder 4.17.1 client
and CloudAdapter over loopback HTTP; plus the reference fix for CloudAdapter.process()."""

from __future__ import annotations

from types import SimpleNamespace

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from botbuilder.core import ActivityHandler, InvokeResponse, TurnContext, serializer_helper
from botbuilder.core.teams import TeamsActivityHandler, TeamsInfo
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from botbuilder.schema import (
    Activity,
    AdaptiveCardInvokeResponse,
    Attachment,
    ChannelAccount,
    ConversationParameters,
    ConversationReference,
    ErrorResponseException,
)
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import MicrosoftAppCredentials

from . import activities as teams
from .connector import ADAPTIVE, FakeConnector, card_of


class InvokeFixCloudAdapter(CloudAdapter):
    """Reference for bot/teams. Stock process() (cloud_adapter.py:106-110) re-serialises the
    invoke body ActivityHandler already made a dict (activity_handler.py:541) -> AttributeError ->
    HTTP 500 on every Action.Execute. Also: a malformed token is 401 here, 500 in stock."""

    async def process(self, request, bot, ws_response=None):
        if request.method != "POST":
            return await super().process(request, bot, ws_response)
        if "application/json" not in request.headers.get("Content-Type", ""):
            raise web.HTTPUnsupportedMediaType()
        activity = Activity().deserialize(await request.json())
        if not activity.type:
            raise web.HTTPBadRequest()
        try:
            auth = await self.bot_framework_authentication.authenticate_request(
                activity, request.headers.get("Authorization", "")
            )
        except Exception as error:  # PermissionError, jwt errors, KeyError on a token w/o iss
            raise web.HTTPUnauthorized() from error
        invoke_response = await self.process_activity(auth, activity, bot.on_turn)
        if not invoke_response:
            return web.Response(status=201)
        body = invoke_response.body
        if not isinstance(body, dict | list):  # only models still need serialising
            body = serializer_helper(body)
        return web.json_response(body, status=invoke_response.status)


KEY = "not-a-real-signing-key-0123456789abcdef"


def card(text: str) -> dict:
    return {
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [{"type": "TextBlock", "text": text}],
        "actions": [{"type": "Action.Execute", "title": "Approve", "verb": "approve"}],
    }


def card_activity(text: str, **kw) -> Activity:
    return Activity(
        type="message", attachments=[Attachment(content_type=ADAPTIVE, content=card(text))], **kw
    )


class Bot(TeamsActivityHandler):
    def __init__(self) -> None:
        self.seen: list[TurnContext] = []
        self.members: list = []

    async def on_message_activity(self, ctx):
        self.seen.append(ctx)
        if ctx.activity.text == "whoami":
            member = await TeamsInfo.get_member(ctx, ctx.activity.from_property.id)
            await ctx.send_activity(member.email)
        else:
            await ctx.send_activity(f"echo {ctx.activity.text}")

    async def on_adaptive_card_invoke(self, ctx, invoke_value):
        self.seen.append(ctx)
        text = f"{invoke_value.action['verb']}d by {ctx.activity.from_property.name}"
        await ctx.update_activity(card_activity(text, id=ctx.activity.reply_to_id))  # PUT
        return AdaptiveCardInvokeResponse(status_code=200, type=ADAPTIVE, value=card(text))

    async def on_installation_update_add(self, ctx):
        self.seen.append(ctx)

    async def on_teams_members_added(self, members, team_info, ctx):
        self.members.extend(members)


class RawInvokeBot(ActivityHandler):  # the minimal case: an InvokeResponse with a dict body
    async def on_invoke_activity(self, ctx):
        return InvokeResponse(
            status=200, body={"statusCode": 200, "type": ADAPTIVE, "value": card("done")}
        )


def adapter_for(cls=InvokeFixCloudAdapter, app_id: str = ""):
    config = SimpleNamespace(APP_ID=app_id, APP_PASSWORD="secret" if app_id else "")
    return cls(ConfigurationBotFrameworkAuthentication(config))


def serve(adapter, bot) -> TestClient:  # `async with serve(...) as http`: POST /api/messages
    async def messages(request):
        return await adapter.process(request, bot)

    app = web.Application()
    app.router.add_post("/api/messages", messages)
    return TestClient(TestServer(app, host="127.0.0.1"))


@pytest.fixture
async def fake():
    async with FakeConnector() as fake:
        fake.add_member("aad-alice", "Alice Admin", "alice@contoso.com")
        yield fake


def anonymous(fake) -> ConnectorClient:  # no app id: botbuilder sends no Authorization header
    return ConnectorClient(MicrosoftAppCredentials(None, None), base_url=fake.service_url)


@pytest.fixture
def client(fake) -> ConnectorClient:
    return anonymous(fake)


async def test_send_reply_update_delete_with_the_anonymous_connector_client(fake, client):
    assert fake.service_url.startswith("http://127.0.0.1:") and fake.service_url.endswith("/")
    conv = "19:abc@thread.tacv2;messageid=1"  # percent-encoded by msrest, decoded by the fake
    sent = await client.conversations.send_to_conversation(conv, card_activity("Approve?"))
    reply = await client.conversations.reply_to_activity(
        conv, sent.id, Activity(type="message", text="re")
    )
    assert sent.id != reply.id
    [call] = await fake.wait_for("send")
    assert (call.conversation_id, call.activity_id, call.status) == (conv, sent.id, 201)
    assert "authorization" not in call.headers and card_of(call) == card("Approve?")
    assert [c.kind for c in fake.sent_to(conv)] == ["send", "reply"]
    updated = await client.conversations.update_activity(conv, sent.id, card_activity("Approved"))
    assert updated.id == sent.id and card_of(fake.activity(conv, sent.id)) == card("Approved")
    await client.conversations.delete_activity(conv, reply.id)
    with pytest.raises(KeyError):
        fake.activity(conv, reply.id)
    with pytest.raises(ErrorResponseException) as err:
        await client.conversations.update_activity(conv, "nope", Activity(type="message"))
    assert err.value.response.status_code == 404 and fake.calls("update")[-1].status == 404
    assert [c.kind for c in fake.calls()] == ["send", "reply", "update", "delete", "update"]


async def test_create_conversation_and_members(fake, client):
    fake.add_member("aad-bob", "Bob Builder", "bob@contoso.com", installed=False)
    params = ConversationParameters(
        bot=ChannelAccount(id="28:bot-app-id"),
        tenant_id="tenant-1",
        members=[ChannelAccount(id="29:aad-alice")],
        channel_data={"tenant": {"id": "tenant-1"}},
    )
    first = await client.conversations.create_conversation(params)
    params.activity = Activity(type="message", text="hello")
    again = await client.conversations.create_conversation(params)
    assert first.id == again.id == "a:new-conv-1" and again.service_url == fake.service_url
    assert fake.activity(again.id, again.activity_id)["text"] == "hello"
    # botbuilder serialises the schema's tenant_id as "tenantID": put it in channelData too
    assert fake.calls("create")[0].body["tenantID"] == "tenant-1"
    params.members = [ChannelAccount(id="29:aad-bob")]
    with pytest.raises(ErrorResponseException) as err:
        await client.conversations.create_conversation(params)
    assert err.value.response.status_code == 403
    members = await client.conversations.get_conversation_members(first.id)
    assert [m.id for m in members] == ["29:aad-alice", "29:aad-bob"]
    for key in ("29:aad-alice", "aad-alice", "ALICE@contoso.com"):
        member = await client.conversations.get_conversation_member(first.id, key)
        assert member.additional_properties["email"] == "alice@contoso.com"
    page = await client.conversations.get_teams_conversation_paged_members(first.id, 1)
    assert len(page.members) == 1 and page.continuation_token == "1"
    with pytest.raises(ErrorResponseException):
        await client.conversations.get_conversation_member(first.id, "29:nobody")
    assert fake.calls("member")[-1].status == 404


async def test_programmed_failures_and_client_retries(fake, client):
    fake.fail_next("post", status=429, retry_after=3)
    with pytest.raises(ErrorResponseException) as err:  # POST and 429: never retried
        await client.conversations.send_to_conversation("a:1", Activity(type="message"))
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "3"
    sent = await client.conversations.send_to_conversation("a:1", Activity(type="message"))
    fake.fail_next("update", status=500)  # PUT/GET/DELETE + 5xx: urllib3 retries at once
    await client.conversations.update_activity("a:1", sent.id, Activity(type="message"))
    assert [(c.kind, c.status) for c in fake.calls()] == [
        ("send", 429),
        ("send", 201),
        ("update", 500),
        ("update", 200),
    ]
    fake.clear()
    with pytest.raises(AssertionError, match="waited 0.05s for 1x create"):
        await fake.wait_for("create", timeout=0.05)


async def test_cloud_adapter_without_app_id_accepts_unsigned_requests(fake):
    adapter, bot = adapter_for(CloudAdapter), Bot()
    async with serve(adapter, bot) as http:
        body = teams.message("hi", user_aad="aad-alice", service_url=fake.service_url)
        resp = await http.post("/api/messages", json=body)  # no Authorization header
        assert resp.status == 201 and await resp.text() == ""
        [call] = await fake.wait_for("reply")
        assert call.path == f"/v3/conversations/a:personal-aad-alice/activities/{body['id']}"
        assert call.body["text"] == "echo hi" and "authorization" not in call.headers
        identity = bot.seen[0].turn_state[adapter.BOT_IDENTITY_KEY]
        assert (identity.claims, identity.is_authenticated) == ({}, True)
        assert identity.authentication_type == "anonymous"
        incoming = bot.seen[0].activity
        assert incoming.conversation.tenant_id is None  # Teams' "tenantId" != schema "tenantID"
        assert incoming.channel_data["tenant"]["id"] == "tenant-1"
        assert incoming.from_property.aad_object_id == "aad-alice"
        resp = await http.post(
            "/api/messages",
            json=teams.message("whoami", user_aad="aad-alice", service_url=fake.service_url),
        )
        assert fake.calls("member")[0].path.endswith("/members/29:aad-alice")  # TeamsInfo
        assert fake.calls("post")[-1].body["text"] == "alice@contoso.com"
        await http.post(
            "/api/messages",
            json=teams.installation_update("aad-alice", service_url=fake.service_url),
        )
        assert bot.seen[-1].activity.type == "installationUpdate"
        await http.post(
            "/api/messages",
            json=teams.conversation_update_members_added(
                "aad-alice",
                service_url=fake.service_url,
                members_added=[{"id": "28:bot-app-id"}, {"id": "29:aad-alice"}],
            ),
        )
        bot_member, alice = bot.members  # a bare user id makes TeamsActivityHandler GET it
        assert bot_member.id == "28:bot-app-id" and alice.email == "alice@contoso.com"
        assert len(fake.calls("member")) == 2


async def test_proactive_continue_and_create_conversation(fake):
    adapter = adapter_for(CloudAdapter)
    ref = ConversationReference().deserialize(
        teams.conversation_reference("aad-alice", service_url=fake.service_url)
    )

    async def say(ctx):
        await ctx.send_activity("proactive")

    await adapter.continue_conversation(ref, say, bot_app_id="")
    [call] = await fake.wait_for("reply")  # a reply to the continuation's uuid1, not ref's id
    assert (
        call.body["replyToId"] not in (None, ref.activity_id)
        and call.body["replyToId"] in call.path
    )
    assert call.conversation_id == "a:personal-aad-alice" and call.body["text"] == "proactive"
    assert "authorization" not in call.headers
    params = ConversationParameters(
        bot=ChannelAccount(id="28:bot-app-id"), members=[ChannelAccount(id="29:aad-alice")]
    )
    await adapter.create_conversation(
        "", say, params, channel_id="msteams", service_url=fake.service_url
    )
    assert [c.kind for c in fake.calls()] == ["reply", "create", "reply"]
    assert fake.sent_to("a:new-conv-1")[0].body["text"] == "proactive"


@pytest.mark.parametrize("bot_cls", [Bot, RawInvokeBot])
async def test_stock_cloud_adapter_answers_500_to_action_execute(fake, bot_cls, caplog):
    async with serve(adapter_for(CloudAdapter), bot_cls()) as http:
        sent = await anonymous(fake).conversations.send_to_conversation(
            "a:personal-aad-alice", Activity(type="message")
        )
        resp = await http.post(
            "/api/messages",
            json=teams.invoke_action(
                "approve",
                {"id": 7},
                user_aad="aad-alice",
                service_url=fake.service_url,
                reply_to_id=sent.id,
            ),
        )
        assert resp.status == 500  # yet the turn ran: Bot's card update did reach the connector
        assert len(fake.calls("update")) == (1 if bot_cls is Bot else 0)
        assert "'dict' object has no attribute 'is_xml_model'" in caplog.text  # 2nd serialise


async def test_fixed_adapter_answers_the_card_and_updates_in_place(fake):
    bot = Bot()
    async with serve(adapter_for(), bot) as http:
        conv = "a:personal-aad-alice"
        sent = await anonymous(fake).conversations.send_to_conversation(
            conv, Activity(type="message")
        )
        resp = await http.post(
            "/api/messages",
            json=teams.invoke_action(
                "approve",
                {"id": 7},
                inputs={"why": "ok"},
                user_aad="aad-alice",
                user_name="Alice",
                service_url=fake.service_url,
                reply_to_id=sent.id,
            ),
        )
        assert resp.status == 200
        assert await resp.json() == {
            "statusCode": 200,
            "type": ADAPTIVE,
            "value": card("approved by Alice"),
        }
        assert card_of(fake.activity(conv, sent.id)) == card("approved by Alice")
        assert bot.seen[0].activity.value["action"]["data"] == {"id": 7, "why": "ok"}
    async with serve(adapter_for(), RawInvokeBot()) as http:
        resp = await http.post(
            "/api/messages",
            json=teams.invoke_action(
                "deny", {}, user_aad="aad-alice", service_url=fake.service_url, reply_to_id="1"
            ),
        )
        assert resp.status == 200 and (await resp.json())["value"] == card("done")


@pytest.mark.parametrize("cls", [CloudAdapter, InvokeFixCloudAdapter])
async def test_with_app_id_unsigned_or_forged_requests_are_refused(fake, cls):
    forged = jwt.encode({"iss": "https://evil.example", "aud": "app-id"}, KEY, algorithm="HS256")
    no_iss = jwt.encode({"aud": "app-id"}, KEY, algorithm="HS256")
    cases = [
        (None, 401),
        (f"Bearer {forged}", 401),  # no network: issuer checked first
        ("Bearer garbage", 500 if cls is CloudAdapter else 401),  # stock: jwt.DecodeError
        (f"Bearer {no_iss}", 500 if cls is CloudAdapter else 401),
    ]  # stock: KeyError 'iss'
    async with serve(adapter_for(cls, app_id="app-id"), Bot()) as http:
        for header, status in cases:
            body = teams.message("hi", user_aad="aad-alice", service_url=fake.service_url)
            headers = {"Authorization": header} if header else {}
            resp = await http.post("/api/messages", headers=headers, json=body)
            assert resp.status == status, header
    assert fake.calls() == []
