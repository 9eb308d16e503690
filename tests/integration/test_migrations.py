"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from storage.db import make_engine
from storage.migrate import revision_status, upgrade
from storage.models import Base


async def test_migrated_schema_matches_models(empty_db_url):
    # An empty database (not the fixtures' migrated template): the migrations really run here.
    engine = make_engine(empty_db_url)
    try:
        assert (await revision_status(engine))[0] is None
        await upgrade(engine)
        await upgrade(engine)  # a second upgrade is a no-op
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
            )
        assert diff == []
        current, head = await revision_status(engine)
        assert current == head is not None
    finally:
        await engine.dispose()
