"""Grants stuck in Failed, as the digest's alert and /healthz count them."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from cards.views import AlertLine
from storage.grant_claims import grants_failed


async def failed_grants_alert(s: AsyncSession) -> list[AlertLine]:
    count = await grants_failed(s)
    if not count:
        return []
    noun = "grant is" if count == 1 else "grants are"
    return [
        AlertLine(
            code="grants_failed",
            severity="high",
            text=(
                f"{count} {noun} stuck in Failed: access that should have been granted or "
                "taken back in Entra, Azure, Slack or a webhook was not. "
                "See `pim-bot grants --failed`."
            ),
        )
    ]
