"""Outbox delivery to Slack: DMs, channel cards, card redraws, App Home refreshes."""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.outbox import Delivery, Recipient, RetryLater, Undeliverable
from cards import slack as cards
from handlers.clock import Clock
from handlers.identity import email_for, link_by_email
from handlers.queries import home
from storage.uow import UnitOfWork

logger = logging.getLogger(__name__)

# Slack errors that no retry will fix.
_FINAL = {"users_not_found", "channel_not_found", "user_not_found", "not_in_channel",
          "is_archived", "invalid_blocks", "msg_too_long", "account_inactive",
          "message_not_found", "cant_update_message", "edit_window_closed"}


class SlackTransport:
    name = "slack"

    def __init__(self, client: AsyncWebClient, uow: UnitOfWork, clock: Clock) -> None:
        self.client, self.uow, self.clock = client, uow, clock

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
        resp = await self._call("chat_postMessage", channel=target, **message)
        ref = {"channel": resp["channel"], "ts": resp["ts"]}
        if delivery.recipient is not None:
            await self.refresh_home(delivery.recipient.email, target)
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
            await self.refresh_home(None, user_id)

    async def refresh_home(self, email: str | None, user_id: str) -> None:
        """Best effort: a stale App Home is not worth a retried message."""
        try:
            email = email or await email_for(self.uow, platform="slack", user_id=user_id)
            if email is None:
                return
            roles, mine, approvals = await home(self.uow, actor=email)
            await self.client.views_publish(user_id=user_id,
                                            view=cards.home_view(roles, mine, approvals))
        except Exception as err:  # the message itself went out; the Home catches up later
            logger.info("App Home refresh for %s failed: %s", user_id, err)

    async def _user_id(self, recipient: Recipient) -> str:
        if recipient.slack_id:
            return recipient.slack_id
        resp = await self._call("users_lookupByEmail", email=recipient.email)
        user_id = resp["user"]["id"]
        if await link_by_email(self.uow, self.clock, platform="slack", user_id=user_id,
                               email=recipient.email) is None:
            # That Slack user is bound to someone else: refused and raised to the admins.
            raise Undeliverable(f"Slack user {user_id} is linked to another person")
        return str(user_id)

    async def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            return await getattr(self.client, method)(**kwargs)
        except SlackApiError as err:
            status = err.response.status_code
            if status == 429:
                headers = {k.lower(): v for k, v in (err.response.headers or {}).items()}
                raw = headers.get("retry-after", "1")
                retry_after = float(raw[0] if isinstance(raw, list) else raw or 1)
                raise RetryLater(retry_after, f"Slack rate limit on {method}") from err
            error = err.response.get("error", "") if err.response is not None else ""
            if error in _FINAL:
                raise Undeliverable(f"Slack {method}: {error}") from err
            raise
