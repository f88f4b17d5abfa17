"""Debian's Chromium through Playwright, and an app on a real port, for the browser tests.

``from browser_helpers import browser`` makes the fixture available to a test module.
Screenshots land in test-artifacts/ (git-ignored) for a human to look at.
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
from pathlib import Path

import pytest
from helpers import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = ROOT / "test-artifacts"
TIMEOUT_MS = 30_000  # generous: a component may be compiled when its fixture installs it


def screenshot(page, name: str) -> Path:
    """Save a PNG of the viewport under test-artifacts/ and return its path.

    Not ``full_page``: Chromium then leaves a sandboxed (out-of-process) iframe blank.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


@contextlib.contextmanager
def serving(app):
    """The WSGI app on 127.0.0.1 (werkzeug, threaded); yields its base URL."""
    from werkzeug.serving import make_server

    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (make system-deps)")
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="chromium-")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                                       viewport={"width": 1440, "height": 960})
        context.set_default_timeout(TIMEOUT_MS)
        yield context
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


class Problems:
    """Everything that went wrong on a page, in every frame: console errors, uncaught exceptions,
    failed requests and HTTP error answers."""

    def __init__(self, page):
        self.items: list[str] = []
        page.on("console", lambda m: self.items.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.items.append(f"uncaught: {e}"))
        page.on("requestfailed", lambda r: self.items.append(f"failed: {r.url} {r.failure}"))
        page.on("response", lambda r: self.items.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __repr__(self) -> str:
        return "\n".join(self.items)
