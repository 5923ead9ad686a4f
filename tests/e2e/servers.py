"""What browser tests share: a real uvicorn server for an app, and a fresh page in the system Chromium.

Each test module builds and seeds its own app, then serves it with `serve(app)`
on a free 127.0.0.1 port; the `browser` fixture lives in conftest.py.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn

from gongji.api.app import create_app
from gongji.core.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PHONE = {"width": 390, "height": 844}


def embedded_app(var: Path):
    """An app on a fresh SQLite database under `var`, with the bundled parameters."""
    return create_app(Settings(database_url=f"sqlite:///{var / 'gongji.sqlite3'}", var_dir=var, params_dir=None))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve(app) -> Iterator[str]:
    """Run `app` under uvicorn in a thread until the block ends; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def new_page(browser, base_url: str, **options) -> Iterator:
    """A fresh browser context (Chinese first unless `locale` says otherwise) and one page in it."""
    context = browser.new_context(base_url=base_url, **{"locale": "zh-CN", **options})
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()
