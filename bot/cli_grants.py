"""`pim-bot grants [--failed]`: where each activation stands in the systems that hold the
access, as a table."""

from __future__ import annotations

import argparse
from typing import Any

from bot.config import Settings
from bot.runtime import Runtime
from handlers.grants.admin import GrantLine, grant_lines

_COLUMNS = ("STATUS", "PHASE", "PERSON", "ROLE", "TARGET", "REQUEST", "TRIES", "UPDATED", "ERROR")


def add_grants_parser(sub: Any) -> None:
    grants = sub.add_parser("grants", help="grants in Entra, Azure, Slack and webhooks")
    grants.add_argument("--failed", action="store_true", help="only grants stuck in Failed")
    grants.add_argument("--limit", type=int, default=200, help="at most this many, newest first")


def table(lines: list[GrantLine]) -> str:
    rows = [_COLUMNS, *(_cells(g) for g in lines)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(w) for cell, w in zip(r, widths, strict=False)), r[-1]]).rstrip()
        for r in rows
    )


def _cells(g: GrantLine) -> tuple[str, ...]:
    error = (g.error or "").replace("\n", " ")
    return (
        g.status,
        g.phase,
        g.person,
        g.role,
        g.target,
        g.request or "-",
        str(g.attempts),
        g.updated.strftime("%Y-%m-%d %H:%M:%S"),
        error[:120],
    )


async def cmd_grants(args: argparse.Namespace, settings: Settings, runtime: Runtime) -> int:
    lines = await grant_lines(runtime.uow, failed_only=args.failed, limit=max(1, args.limit))
    if not lines:
        print("No failed grants." if args.failed else "No grants yet.")
        return 0
    print(table(lines))
    return 0
