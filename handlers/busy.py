"""A chat interaction's time budget: say "busy, nothing changed" instead of keeping someone
waiting past Slack's 3-second limit, or answering nothing at all.

The database gives up first: chat connections wait only briefly for a lock, a pooled
connection or a new one (the composition root sets how long per transport), then raise inside
the transaction, which rolls back, so "nothing was changed" is true. The deadline is only a backstop for an overloaded machine: cutting a
use case off there might land during its COMMIT, so that answer promises nothing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from handlers.errors import Busy, Slow

logger = logging.getLogger(__name__)

# Slack gives us 3 s to answer; leave room for rendering and the network.
CHAT_BUDGET_SECONDS = 2.7


def chat_deadline(seconds: float = CHAT_BUDGET_SECONDS) -> float:
    """When an interaction that starts now must have finished with the database."""
    return asyncio.get_running_loop().time() + seconds


@asynccontextmanager
async def chat_budget(deadline: float | None = None) -> AsyncIterator[None]:
    """Run engine calls until `deadline` (loop time); a database that stays locked or out of
    reach becomes `Busy`, running out of time for another reason `Slow`."""
    budget = asyncio.timeout_at(deadline if deadline is not None else chat_deadline())
    try:
        async with budget:
            yield
    except TimeoutError as err:
        if not budget.expired():  # a connect timeout: nothing was written
            raise _busy(err) from err
        logger.warning("chat interaction ran out of time")
        raise Slow() from err
    except (DBAPIError, PoolTimeout, OSError) as err:
        raise _busy(err) from err


def _busy(err: Exception) -> Busy:
    logger.warning("chat interaction gave up, database busy or unreachable: %s", type(err).__name__)
    return Busy()
