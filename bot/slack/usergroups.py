"""The Slack user group grant provider: membership of a user group (S…) is the access.

Slack has no "add one member" call: usergroups.users.update replaces the whole list. So a
grant reads the list, adds the person and writes it back. Within this process updates of one
user group are serialised, so two grants here cannot overwrite each other. Two replicas can:
both read, both write, and one person's change is lost (a lost update). Reconciliation
(`members()` against pim-bot's grants) restores it on its next pass; run one replica, or
accept that window, when Slack user groups carry access.

Needs the bot scopes usergroups:read and usergroups:write.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.errors import slack_failure
from handlers.grants.provider import GrantJob, ProviderError, Target

logger = logging.getLogger(__name__)
# What usergroups.users.update accepts for "nobody": an empty `users=` is refused.
NOBODY = "[]"


class SlackUsergroupProvider:
    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        self._locks: dict[str, asyncio.Lock] = {}

    async def grant(self, job: GrantJob) -> None:
        await self._change(job, add=True)

    async def extend(self, job: GrantJob) -> None:
        """Membership has no end in Slack: pim-bot's revoke at the new end is what ends it."""

    async def revoke(self, job: GrantJob) -> None:
        await self._change(job, add=False)

    async def members(self, target: Target) -> frozenset[str] | None:
        return frozenset(await self._users(target.ref))

    async def _change(self, job: GrantJob, *, add: bool) -> None:
        user, group = job.person.slack_id, job.target.ref
        if not user:
            raise ProviderError(
                f"{job.person.email} has no Slack user id to add to {group}", permanent=True
            )
        async with self._locks.setdefault(group, asyncio.Lock()):
            users = await self._users(group)
            if (user in users) == add:
                return  # already so: granting or revoking again changes nothing
            users = users + [user] if add else [u for u in users if u != user]
            await self._call(
                "usergroups_users_update",
                usergroup=group,
                users=",".join(users) if users else NOBODY,
            )
            logger.info("slack user group %s: %s %s", group, "added" if add else "removed", user)

    async def _users(self, group: str) -> list[str]:
        resp = await self._call("usergroups_users_list", usergroup=group, include_disabled=True)
        return [str(u) for u in resp.get("users") or []]

    async def _call(self, method: str, **args: Any) -> Any:
        try:
            return await getattr(self.client, method)(**args)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as err:
            raise slack_failure(method.replace("_", "."), err) from None


def usergroup_provider(*, token: str, api_url: str | None = None) -> SlackUsergroupProvider:
    """The provider on its own Web API client (SLACK_BOT_TOKEN, SLACK_API_URL)."""
    base_url = api_url or AsyncWebClient.BASE_URL
    if not base_url.endswith("/"):
        base_url += "/"  # slack_sdk joins method names straight onto it
    client = AsyncWebClient(token=token, base_url=base_url)
    return SlackUsergroupProvider(client)
