"""One-statement reads on PostgreSQL, sent straight through asyncpg's own pool.

Every chat request reads who is asking, and most then read one view: a statement each, on a
snapshot of its own. Through SQLAlchemy each of those cost about 0.2 ms of CPU (a pool
checkout, an execution context, a result object), as much as slack-bolt's whole handling of
the request. asyncpg's pool and a statement compiled once cost a third of that.

Only single SELECTs of plain columns, without IN lists, go this way; writes keep SQLAlchemy's transactions. The
statement is still SQLAlchemy's, compiled by its asyncpg dialect, and its column types
convert the values both ways as they would there. A failure is raised as SQLAlchemy's
DBAPIError, so callers treat it as any database error (a "busy" answer in a chat)."""

from __future__ import annotations

import asyncio
import json
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import Select
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.exc import DBAPIError

# Beside the engine's 30 (storage.db). Fewer made requests queue for a connection under
# load: with 10, 50 concurrent `/pim roles` answered a quarter slower than through SQLAlchemy.
POOL_SIZE = 20

Convert = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    names: tuple[str, ...]  # the parameters, in $n order
    binds: tuple[Convert, ...]
    bound: Mapping[str, Any]  # values the statement carries itself (its constants)
    results: tuple[Convert, ...]
    row: type


def _plan(statement: Select[Any], dialect: Dialect) -> _Plan:
    compiled = statement.compile(dialect=dialect)
    if "__[POSTCOMPILE_" in compiled.string:
        # An IN list is rendered per call; these statements are compiled once.
        raise ValueError("a direct read takes no IN list: compare with = or use ANY")
    names = tuple(compiled.positiontup or ())
    binds = tuple(
        compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
    )
    columns = list(statement.selected_columns)
    results = tuple(c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns)
    return _Plan(
        sql=compiled.string,
        names=names,
        binds=binds,
        bound={
            name: bind.effective_value
            for name, bind in compiled.binds.items()
            if name in names and not bind.required
        },
        results=results,
        row=namedtuple("Row", [c.key for c in columns], rename=True),  # type: ignore[misc]
    )


async def _codecs(conn: asyncpg.Connection) -> None:
    # What SQLAlchemy's asyncpg dialect sets on its connections: JSON arrives decoded.
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=str, decoder=json.loads, schema="pg_catalog", format="text"
        )


async def _as_it_was(_conn: asyncpg.Connection) -> None:
    """asyncpg resets a connection on its way back to the pool (RESET ALL, UNLISTEN, ...): a
    round trip per read for state that a lone SELECT never changes."""


class DirectReader:
    """Runs one SELECT at a time on a small asyncpg pool of its own, opened on first use."""

    def __init__(self, url: URL, dialect: Dialect, *, connect: Mapping[str, Any]) -> None:
        self._dialect = dialect
        _, from_url = dialect.create_connect_args(url)
        self._connect = {**from_url, **connect}
        self._plans: dict[int, tuple[Select[Any], _Plan]] = {}
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def rows(self, statement: Select[Any], params: Mapping[str, Any]) -> Sequence[Any]:
        """The rows, as named tuples of the selected columns' keys."""
        kept = self._plans.get(id(statement))
        if kept is None or kept[0] is not statement:
            kept = (statement, _plan(statement, self._dialect))
            self._plans[id(statement)] = kept
        plan = kept[1]
        args = []
        for name, convert in zip(plan.names, plan.binds, strict=True):
            value = params[name] if name in params else plan.bound[name]
            args.append(value if convert is None or value is None else convert(value))
        try:
            pool = self._pool or await self._open()
            records = await pool.fetch(plan.sql, *args)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as err:
            raise DBAPIError(plan.sql, tuple(args), err) from err
        return [
            plan.row(*(v if c is None else c(v) for v, c in zip(r, plan.results, strict=True)))
            for r in records
        ]

    async def _open(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    min_size=1,
                    max_size=POOL_SIZE,
                    init=_codecs,
                    reset=_as_it_was,
                    **self._connect,
                )
        return self._pool

    def terminate(self) -> None:
        """Close every connection now (the engine was disposed); a later read reopens."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.terminate()
