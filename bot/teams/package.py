"""`pim-bot teams package`: the zip an admin uploads to Teams (manifest.json and two icons)."""

from __future__ import annotations

import io
import json
import re
import struct
import zipfile
import zlib
from typing import Any

from handlers.grammar import USAGE

MANIFEST_VERSION = "1.17"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# Teams lists at most 10 commands per scope; these are the ones people use day to day.
MENU = [
    "help",
    "roles",
    "activate",
    "requests",
    "cancel",
    "approvals",
    "approve",
    "deny",
    "deactivate",
    "audit",
]
_DESCRIPTIONS = {
    "help": "What pim-bot can do",
    "roles": "Your eligible and active roles",
    "activate": "Ask for a role: activate ROLE [DURATION] [JUSTIFICATION] (no role: a form)",
    "requests": "Your pending requests",
    "cancel": "Cancel a pending request: cancel R-XXXX",
    "approvals": "Requests you can approve or deny",
    "approve": "Approve a request: approve R-XXXX [reason]",
    "deny": "Deny a request: deny R-XXXX reason",
    "deactivate": "Give a role back early: deactivate ROLE",
    "audit": "Admins: the audit trail [USER|ROLE] [since DURATION]",
}


class PackageError(ValueError):
    pass


def manifest(*, app_id: str, website: str, privacy: str, terms: str) -> dict[str, Any]:
    if not _GUID.match(app_id or ""):
        raise PackageError(f"--app-id must be the bot's Microsoft App ID (a GUID), not {app_id!r}")
    for name, url in (("--website", website), ("--privacy-url", privacy), ("--terms-url", terms)):
        if not url.startswith("https://"):
            raise PackageError(f"{name} must be an https:// address, not {url!r}")
    assert set(MENU) <= set(USAGE), "every menu command must exist in the grammar"
    return {
        "$schema": "https://developer.microsoft.com/json-schemas/teams/"
        f"v{MANIFEST_VERSION}/MicrosoftTeams.schema.json",
        "manifestVersion": MANIFEST_VERSION,
        "version": "1.0.0",
        "id": app_id,
        "developer": {
            "name": "pim-bot",
            "websiteUrl": website,
            "privacyUrl": privacy,
            "termsOfUseUrl": terms,
        },
        "name": {"short": "pim-bot", "full": "pim-bot: Privileged Identity Management"},
        "description": {
            "short": "Just-in-time privileged roles, approved in chat",
            "full": "Ask for just-in-time activation of a privileged role, approve requests "
            "with one click, and let access end by itself on time. Every decision is "
            "audited.",
        },
        "icons": {"color": "color.png", "outline": "outline.png"},
        "accentColor": "#1D3557",
        "bots": [
            {
                "botId": app_id,
                "scopes": ["personal"],
                "supportsFiles": False,
                "isNotificationOnly": False,
                "commandLists": [
                    {
                        "scopes": ["personal"],
                        "commands": [
                            {"title": name, "description": _DESCRIPTIONS[name]} for name in MENU
                        ],
                    }
                ],
            }
        ],
        "permissions": ["identity", "messageTeamMembers"],
        "validDomains": [],
    }


def build_package(*, app_id: str, website: str, privacy: str, terms: str) -> bytes:
    data = manifest(app_id=app_id, website=website, privacy=privacy, terms=terms)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(data, indent=2))
        zf.writestr(
            "color.png", _icon(192, background=(29, 53, 87, 255), mark=(255, 255, 255, 255))
        )
        zf.writestr("outline.png", _icon(32, background=(0, 0, 0, 0), mark=(255, 255, 255, 255)))
    return out.getvalue()


def _icon(size: int, *, background: tuple[int, ...], mark: tuple[int, ...]) -> bytes:
    """A key-hole shield, drawn pixel by pixel so the package needs no image library."""
    rows = []
    c = size / 2
    for y in range(size):
        row = bytearray([0])  # PNG filter type: none
        for x in range(size):
            dx, dy = (x + 0.5 - c) / size, (y + 0.5 - c) / size
            in_ring = 0.18 < (dx * dx + (dy + 0.08) ** 2) ** 0.5 < 0.3 and dy < 0.05
            in_body = abs(dx) < 0.3 and 0.0 <= dy < 0.38
            keyhole = (dx * dx + (dy - 0.15) ** 2) ** 0.5 < 0.06 or (
                abs(dx) < 0.025 and 0.15 <= dy < 0.3
            )
            row += bytes(mark if (in_ring or in_body) and not keyhole else background)
        rows.append(bytes(row))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )
