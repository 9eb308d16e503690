"""The HTTP access line: every answer at DEBUG, and only answers that went wrong at INFO, so
a busy server's log at INFO shows its failures, not every acknowledged Slack request."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from bot.server import AccessLog


def _logged(caplog: pytest.LogCaptureFixture, level: int, status: int) -> list[str]:
    logger = logging.getLogger("test.access")
    caplog.clear()
    with caplog.at_level(level, logger="test.access"):
        AccessLog(logger).log(
            make_mocked_request("POST", "/slack/events"), web.Response(status=status), 0.01
        )
    return [f"{r.levelname} {r.getMessage()}" for r in caplog.records]


def test_answered_requests_are_logged_at_debug_only(caplog: pytest.LogCaptureFixture) -> None:
    assert _logged(caplog, logging.INFO, 200) == []
    (line,) = _logged(caplog, logging.DEBUG, 200)
    assert line.startswith("DEBUG ") and '"POST /slack/events HTTP/1.1" 200' in line


@pytest.mark.parametrize("status", [400, 409, 500])
def test_failures_are_logged_at_info(caplog: pytest.LogCaptureFixture, status: int) -> None:
    (line,) = _logged(caplog, logging.INFO, status)
    assert line.startswith("INFO ") and f'"POST /slack/events HTTP/1.1" {status}' in line
