"""Only the tenants pim-bot serves reach the bot: checked first thing in every turn.

PIM_TEAMS_TENANTS lists them (MICROSOFT_APP_TENANT_ID when it is not set). An activity from any
other tenant, or naming none, is answered with a polite refusal and nothing else: no roster
lookup, no link, no conversation reference kept.

With no tenant list: a registered bot (MICROSOFT_APP_ID set) refuses every activity, because a
multi-tenant registration would otherwise let any organisation's users in; local unauthenticated
mode accepts any tenant, since an unsigned activity's tenant is whatever its sender wrote.
Start-up says which applies.
"""

from __future__ import annotations

import logging

from botbuilder.core import Bot, TurnContext
from botbuilder.schema import Activity, ActivityTypes, InvokeResponse

from bot.config import Settings
from bot.teams.people import tenant_of

logger = logging.getLogger(__name__)

OTHER_TENANT = (
    "pim-bot does not serve your organisation. Ask the admins of the organisation "
    "that runs it if you need access."
)


def allowed_tenants(settings: Settings) -> frozenset[str]:
    listed = settings.teams_tenants or tuple(t for t in (settings.microsoft_app_tenant_id,) if t)
    return frozenset(t.strip().lower() for t in listed if t.strip())


class TenantGate(Bot):
    """Wraps the bot the adapter runs; a turn from a tenant not served never reaches it."""

    def __init__(self, bot: object, *, tenants: frozenset[str], any_tenant: bool) -> None:
        self.bot, self.tenants, self.any_tenant = bot, tenants, any_tenant

    @classmethod
    def from_settings(cls, settings: Settings, *, bot: object) -> TenantGate:
        tenants = allowed_tenants(settings)
        local = not settings.microsoft_app_id
        if tenants:
            logger.info("Teams serves tenant(s) %s", ", ".join(sorted(tenants)))
        elif local:
            logger.warning(
                "PIM_TEAMS_TENANTS is not set: Teams accepts any tenant "
                "(unauthenticated local mode only)"
            )
        else:
            logger.error(
                "Neither PIM_TEAMS_TENANTS nor MICROSOFT_APP_TENANT_ID is set: Teams "
                "refuses every activity until one names your tenant"
            )
        return cls(bot, tenants=tenants, any_tenant=local and not tenants)

    def admits(self, tenant: str | None) -> bool:
        if self.any_tenant:
            return True
        return tenant is not None and tenant.strip().lower() in self.tenants

    async def on_turn(self, context: TurnContext) -> None:
        tenant = tenant_of(context)
        if self.admits(tenant):
            await self.bot.on_turn(context)  # type: ignore[attr-defined]
            return
        activity = context.activity
        logger.info("Teams %s from tenant %s refused", activity.type, tenant or "(none)")
        if activity.type == ActivityTypes.message:
            await context.send_activity(OTHER_TENANT)
        elif activity.type == ActivityTypes.invoke:
            await context.send_activity(
                Activity(
                    type=ActivityTypes.invoke_response,
                    value=InvokeResponse(
                        status=200,
                        body={
                            "statusCode": 200,
                            "type": "application/vnd.microsoft.activity.message",
                            "value": OTHER_TENANT,
                        },
                    ),
                )
            )
