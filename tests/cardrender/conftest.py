"""One headless Chromium with the official Adaptive Cards renderer for the whole session.

Without Debian's `chromium` or `tests/cardrender/node_modules` (`npm ci` here) these tests
are skipped, unless PIM_REQUIRE_CARD_RENDERER=1 (CI), where they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.cardrender.browser import RendererUnavailable, SyncCardRenderer, check_installed


@pytest.fixture(scope="session")
def card_renderer() -> Iterator[SyncCardRenderer]:
    try:
        check_installed()
    except RendererUnavailable as exc:
        if os.environ.get("PIM_REQUIRE_CARD_RENDERER") == "1":
            pytest.fail(f"PIM_REQUIRE_CARD_RENDERER=1 but {exc}", pytrace=False)
        pytest.skip(f"card renderer unavailable: {exc}")
    with SyncCardRenderer() as renderer:
        yield renderer
