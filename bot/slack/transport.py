"""Outbox delivery to Slack: DMs, channel cards, card redraws, App Home refreshes.

Each post carries the outbox id in Slack message metadata. A message whose earlier attempt
may have gone out (a crash, a timeout) is first looked for in the conversation's recent
history, and recorded as sent if it is there, so nobody gets it twice. 429s pause only the
method and channel Slack named (bot.slack.pacing)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.outbox import Delivery, Recipient, RetryLater, Undeliverable
from bot.slack.pacing import Pacer
from cards import slack as cards
from handlers.clock import Clock
from handlers.group_eligibility import GroupMembership
from handlers.identity import email_for, link_by_email
from handlers.queries import home
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)

# Slack errors that no retry will fix.
_FINAL = {
    "users_not_found",
    "channel_not_found",
    "user_not_found",
    "not_in_channel",
    "is_archived",
    "invalid_blocks",
    "msg_too_long",
    "account_inactive",
    "message_not_found",
    "cant_update_message",
    "edit_window_closed",
}
EVENT_TYPE = "pim_outbox"  # Slack message metadata naming the outbox row a post came from
# How far back to look for a post that may have gone out: the newest messages of the
# conversation, a page at a time. Later messages to the same person wait for this one, so
# it is among the newest unless people have talked a lot since.
HISTORY_PAGE, HISTORY_PAGES = 100, 3
# A pause shorter than this is waited out in place; a longer one gives the row back.
MAX_SLEEP = 10.0
HOME_INLINE = 2  # App Home redraws run beside message sends; more wait in the background


class SlackTransport:
    name = "slack"

    def __init__(
        self,
        client: AsyncWebClient,
        uow: UnitOfWork,
        clock: Clock,
        groups: GroupMembership | None = None,
    ) -> None:
        self.client, self.uow, self.clock = client, uow, clock
        self.groups = groups  # roles eligible through an Entra group, on the App Home
        self.pacer = Pacer()
        # A Home is redrawn right after the message, unless HOME_INLINE redraws are already
        # running: then it joins these (user id -> email if known), which one background task
        # redraws one at a time. A burst of messages is not slowed by its Homes, and three
        # messages to one person meanwhile cost one redraw.
        self._homes: dict[str, str | None] = {}
        self._homes_task: asyncio.Task[None] | None = None
        self._homes_inline = 0

    def reaches(self, recipient: Recipient | None, channel: dict[str, str] | None) -> bool:
        # Without a slack_id we can still try users.lookupByEmail at send time.
        return "slack" in channel if channel is not None else recipient is not None

    async def send(self, delivery: Delivery) -> dict[str, Any] | None:
        message = cards.notification_message(delivery.note)
        if delivery.channel is not None:
            target = delivery.channel["slack"]
        else:
            assert delivery.recipient is not None
            target = await self._user_id(delivery.recipient)
        ref = None
        if delivery.resumed_since is not None:
            ref = await self._find_posted(target, delivery.id)
        if ref is None:
            metadata = {"event_type": EVENT_TYPE, "event_payload": {"outbox_id": delivery.id}}
            resp = await self._call(
                "chat_postMessage", channel=target, metadata=metadata, posting=True, **message
            )
            ref = {"channel": resp["channel"], "ts": resp["ts"]}
        else:
            logger.info(
                "delivery %s was already posted at %s/%s; not posting it again",
                delivery.id,
                ref["channel"],
                ref["ts"],
            )
        if delivery.recipient is not None:
            await self._home_changed(delivery.recipient.email, target)
            ref["user"] = target  # whose App Home to redraw when this card is redrawn
        return ref

    async def update(self, delivery: Delivery) -> None:
        message = cards.notification_message(delivery.note)
        retry: Exception | None = None
        for ref in delivery.posted:
            try:
                await self._call("chat_update", channel=ref["channel"], ts=ref["ts"], **message)
            except Undeliverable as err:  # deleted message or channel: the others still matter
                logger.info("card %s/%s cannot be redrawn: %s", ref["channel"], ref["ts"], err)
            except Exception as err:  # retry the whole redraw; updating a card twice is harmless
                retry = retry or err
        if retry is not None:
            raise retry
        # The request left everyone's lists (Approve requests, My requests): redraw their Home.
        for user_id in dict.fromkeys(ref["user"] for ref in delivery.posted if ref.get("user")):
            await self._home_changed(None, user_id)

    async def _find_posted(self, target: str, outbox_id: int) -> dict[str, str] | None:
        """Where the post of this outbox row landed, if it is among the conversation's newest
        messages; None if it is not."""
        channel = target
        if target[:1] in ("U", "W"):  # history is read from the DM channel, not the user
            channel = (await self._call("conversations_open", users=target))["channel"]["id"]
        cursor = None
        for _ in range(HISTORY_PAGES):
            resp = await self._call(
                "conversations_history",
                channel=channel,
                cursor=cursor,
                limit=HISTORY_PAGE,
                include_all_metadata=True,
            )
            for msg in resp.get("messages") or []:
                meta = msg.get("metadata") or {}
                if (
                    meta.get("event_type") == EVENT_TYPE
                    and (meta.get("event_payload") or {}).get("outbox_id") == outbox_id
                ):
                    return {"channel": channel, "ts": msg["ts"]}
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not resp.get("has_more") or not cursor:
                break
        return None

    async def _home_changed(self, email: str | None, user_id: str) -> None:
        if self._homes_inline >= HOME_INLINE or self._homes:
            self.home_needs_refresh(email, user_id)
            return
        self._homes_inline += 1
        try:
            await self.refresh_home(email, user_id)
        finally:
            self._homes_inline -= 1

    def home_needs_refresh(self, email: str | None, user_id: str) -> None:
        self._homes[user_id] = email or self._homes.get(user_id)
        if self._homes_task is None or self._homes_task.done():
            self._homes_task = asyncio.create_task(self._refresh_homes())

    async def _refresh_homes(self) -> None:
        while self._homes:
            user_id = next(iter(self._homes))
            await self.refresh_home(self._homes.pop(user_id), user_id)

    async def refresh_home(self, email: str | None, user_id: str) -> None:
        """Best effort: a stale App Home is not worth a retried message, nor a wait."""
        if self.pacer.wait("views.publish"):
            return
        try:
            email = email or await email_for(self.uow, platform="slack", user_id=user_id)
            if email is None:
                return
            roles, mine, approvals = await home(self.uow, actor=email, groups=self.groups)
            await self.client.views_publish(
                user_id=user_id, view=cards.home_view(roles, mine, approvals)
            )
        except SlackApiError as err:
            if err.response.status_code == 429:
                self.pacer.limited("views.publish", "", _retry_after(err))
            logger.info("App Home refresh for %s failed: %s", user_id, err)
        except Exception as err:  # the message itself went out; the Home catches up later
            logger.info("App Home refresh for %s failed: %s", user_id, err)

    async def _user_id(self, recipient: Recipient) -> str:
        if recipient.slack_id:
            return recipient.slack_id
        resp = await self._call("users_lookupByEmail", email=recipient.email)
        user_id = resp["user"]["id"]
        if (
            await link_by_email(
                self.uow, self.clock, platform="slack", user_id=user_id, email=recipient.email
            )
            is None
        ):
            # That Slack user is bound to someone else: refused and raised to the admins.
            raise Undeliverable(f"Slack user {user_id} is linked to another person")
        return str(user_id)

    async def _call(self, method: str, *, posting: bool = False, **kwargs: Any) -> Any:
        """Call a Web API method, waiting out (or handing back) a pause Slack asked for.
        posting: this call is the post itself, so a refusal proves nothing went out."""
        name, channel = method.replace("_", "."), str(kwargs.get("channel") or "")
        delay = self.pacer.reserve(name, channel)
        while delay > 0:
            if delay > MAX_SLEEP:
                raise RetryLater(delay, f"Slack {name} is paused", sent_nothing=posting)
            await asyncio.sleep(delay)
            # paused meanwhile (a 429 elsewhere): queue up again rather than all go at once
            delay = self.pacer.reserve(name, channel) if self.pacer.wait(name, channel) else 0.0
        try:
            resp = await getattr(self.client, method)(**kwargs)
            self.pacer.went_through(name, channel)
            return resp
        except SlackApiError as err:
            status = err.response.status_code
            if status == 429:
                retry_after = _retry_after(err)
                self.pacer.limited(name, channel, retry_after)
                raise RetryLater(
                    retry_after, f"Slack rate limit on {method}", sent_nothing=posting
                ) from err
            error = err.response.get("error", "") if err.response is not None else ""
            if error in _FINAL:
                raise Undeliverable(f"Slack {method}: {error}") from err
            raise


def _retry_after(err: SlackApiError) -> float:
    headers = {k.lower(): v for k, v in (err.response.headers or {}).items()}
    raw = headers.get("retry-after", "1")
    try:
        return float(raw[0] if isinstance(raw, list) else raw or 1)
    except ValueError:
        return 1.0
