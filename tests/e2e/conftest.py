"""The `browser` fixture: the system Chromium through Playwright, once per session.

Without Chromium the browser tests skip — or fail when GONGJI_STRICT=1, as in CI.
"""

from __future__ import annotations

import os

import pytest
from servers import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not installed"
        if os.environ.get("GONGJI_STRICT") == "1":
            pytest.fail(f"{reason} (GONGJI_STRICT=1)")
        pytest.skip(f"{reason}; set GONGJI_STRICT=1 to fail instead")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
