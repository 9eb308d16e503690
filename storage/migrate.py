"""Schema migrations (Alembic), run with the application's own async engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

_SCRIPTS = Path(__file__).parent / "migrations"


def _config(connection: Any) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.attributes["connection"] = connection
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: command.upgrade(_config(c), revision))


async def revision_status(engine: AsyncEngine) -> tuple[str | None, str | None]:
    """(current revision in the database, newest revision in the code)."""
    head = ScriptDirectory.from_config(_config(None)).get_current_head()
    async with engine.connect() as conn:
        # Read the version table directly: MigrationContext logs two INFO lines per call,
        # and /healthz calls this on every probe.
        has_table = await conn.run_sync(lambda c: inspect(c).has_table("alembic_version"))
        current = (
            await conn.scalar(text("SELECT version_num FROM alembic_version"))
            if has_table
            else None
        )
    return current, head


async def autogenerate(engine: AsyncEngine, message: str) -> None:
    """Developer helper: write a new revision from the models."""
    async with engine.begin() as conn:
        await conn.run_sync(
            lambda c: command.revision(_config(c), message=message, autogenerate=True)
        )
