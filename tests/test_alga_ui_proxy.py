"""/ext-ui behind a reproduction of Alga's /runner UI proxy (tests/alga_runner_proxy.mjs, Node's fetch).

That proxy decodes br/gzip but keeps Content-Encoding and Content-Length, so a compressed variant
breaks in the browser. Attached to an Alga server the runner must never compress (EXT_UI_COMPRESSION
auto); forcing it on shows the break, which proves the reproduction is faithful.
"""
from __future__ import annotations

import http.client
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import browser_helpers
import pytest
from browser_helpers import Problems, browser  # noqa: F401 (fixture)
from helpers import FIXTURES, publish

from app import service_of as svc

pytestmark = pytest.mark.slow

NODE = shutil.which("node")
PROXY = Path(__file__).parent / "alga_runner_proxy.mjs"
UI = FIXTURES / "uis" / "vite-app"
TENANT, EXT = "3f2b8c1e-6d4a-4e7f-9a10-2b3c4d5e6f70", "7c9e6679-7425-40de-944b-e07fc1f90ae7"
BROWSER_ENCODINGS = "gzip, deflate, br, zstd"


def ui_members() -> dict[str, Path]:
    members = {"manifest.json": UI / "manifest.json"}
    for path in sorted((UI / "ui").rglob("*")):
        if path.is_file():
            members[path.relative_to(UI).as_posix()] = path
    return members


@pytest.fixture(scope="module", params=["auto", "on"])
def proxied(request, tmp_path_factory):
    """The runner attached to an Alga server (nothing is asked of it: strict validation off), with
    EXT_UI_COMPRESSION auto or on, behind the Node proxy."""
    if NODE is None:
        pytest.skip("node is not installed")
    from app import create_app

    tmp = tmp_path_factory.mktemp(f"proxy-{request.param}")
    digest = publish(tmp / "store", TENANT, EXT, ui_members())
    app = create_app({"bundle_store_base": str(tmp / "store"), "cache_root": str(tmp / "cache"), "workers": 1,
                      "static_strict_validation": False, "registry_base_url": "http://127.0.0.1:9",
                      "alga_auth_key": "k", "ui_compression": request.param})
    with browser_helpers.serving(app) as base:
        proc = subprocess.Popen([NODE, str(PROXY), base], stdout=subprocess.PIPE, text=True)
        try:
            port = int(proc.stdout.readline())
            prefix = f"/runner/ext-ui/{EXT}/{quote('sha256:' + digest, safe='')}/"
            yield {"port": port, "prefix": prefix, "compression": request.param}
        finally:
            proc.terminate()
            proc.wait(10)
    svc(app).lifecycle.stop()


def fetch(proxied, tail: str, **headers) -> tuple[int, dict[str, str], bytes]:
    """Raw HTTP through the proxy: no client-side decoding, so we see what a browser gets."""
    conn = http.client.HTTPConnection("127.0.0.1", proxied["port"], timeout=10)
    try:
        conn.request("GET", proxied["prefix"] + tail, headers={"Accept-Encoding": BROWSER_ENCODINGS, **headers})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def test_assets_through_the_proxy(proxied):
    js = (UI / "ui" / "dist" / "iframe" / "main.js").read_bytes()
    status, headers, body = fetch(proxied, f"dist/iframe/main.js?tenant={TENANT}")
    assert status == 200
    if proxied["compression"] == "auto":
        assert "content-encoding" not in headers and headers["content-length"] == str(len(js)) and body == js
        assert headers["access-control-allow-origin"] == "*" and "vary" not in headers
        status, _, body = fetch(proxied, "dist/iframe/main.js", **{"If-None-Match": headers["etag"]})
        assert status == 304 and body == b""
    else:  # Alga's trap, reproduced: says br, is plain text (and cut at the compressed length)
        assert headers["content-encoding"] == "br" and int(headers["content-length"]) < len(js)
        assert body == js[:len(body)]


@pytest.mark.browser
def test_ui_in_chromium_behind_the_proxy(proxied, browser):
    page = browser.new_page()
    try:
        problems = Problems(page)
        url = f"http://127.0.0.1:{proxied['port']}{proxied['prefix']}index.html?tenant={TENANT}&extensionId={EXT}"
        if proxied["compression"] == "auto":
            page.goto(url)
            page.locator("#panel.ready").filter(has_text="lazy panel loaded").wait_for()
            assert page.locator("#ctx").inner_text() == f"extensionId: {EXT}"
            page.wait_for_load_state("networkidle")
            assert not problems, problems
        else:  # the module the page would load cannot be decoded
            page.goto(f"http://127.0.0.1:{proxied['port']}/")  # an empty page on the proxy's origin
            outcome = page.evaluate("u => import(u).then(() => 'ran', e => 'failed: ' + e.name)",
                                    f"{proxied['prefix']}dist/iframe/main.js")
            assert outcome == "failed: TypeError"
            assert any("ERR_CONTENT_DECODING_FAILED" in p for p in problems.items), problems
    finally:
        page.close()
