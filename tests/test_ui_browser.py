"""UIs built the way Alga's real samples are, in Chromium, in both host-page sandboxes.

Fixtures (tests/fixtures/uis/, outputs committed, rebuilt by its build.sh):
  module-scripts  plain <script type="module"> importing another module (hello-world)
  vite-app        a vite library build with CSS and a lazy chunk, theme envelopes (ui-kit-showcase)
  esbuild-sdk     an esbuild bundle of the published @alga-psa/extension-iframe-sdk (client-portal-test)
Each must render with no console error, no failed request and no HTTP error, with the iframe's
origin either the page's (Alga's docker sandbox, the default) or opaque (EXT_UI_SANDBOX=strict).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import browser_helpers
import pytest
from browser_helpers import Problems, browser  # noqa: F401 (fixture)
from helpers import FIXTURES, GUESTS, base_config

from app import service_of as svc

pytestmark = [pytest.mark.slow, pytest.mark.browser]

UIS = FIXTURES / "uis"
TENANT = "51bbbfe5-0720-4d9b-b3e5-b5b43e441a52"  # the default tenant
SANDBOXES = {"same-origin": "allow-scripts allow-same-origin allow-forms allow-popups", "strict": "allow-scripts"}


def fixture_folder(name: str, tmp: Path) -> Path:
    """A copy of the fixture; the SDK one gets the SDK test guest as its handler (not committed twice)."""
    folder = tmp / name
    shutil.copytree(UIS / name, folder, ignore=shutil.ignore_patterns("node_modules", "src", "*.mjs"))
    if json.loads((folder / "manifest.json").read_text()).get("api"):
        (folder / "dist").mkdir(exist_ok=True)
        (folder / "dist" / "main.wasm").symlink_to(GUESTS / "sdk.wasm")
    return folder


@pytest.fixture(scope="module", params=list(SANDBOXES))
def site(request, shared_dirs, tmp_path_factory):
    from app import create_app

    tmp = tmp_path_factory.mktemp(f"uis-{request.param}")
    app = create_app({**base_config(shared_dirs, tmp), "static_strict_validation": True,
                      "ui_sandbox": request.param})
    installer = svc(app).standalone.installer()
    installs = {name: installer.install(fixture_folder(name, tmp)).install
                for name in ("module-scripts", "vite-app", "esbuild-sdk")}
    with browser_helpers.serving(app) as base:
        yield {"base": base, "installs": installs, "sandbox": request.param}
    svc(app).lifecycle.stop()


@pytest.fixture
def page(browser):
    page = browser.new_page()
    yield page
    page.close()


def open_ui(page, site, name: str):
    """Open the fixture in the host page; the iframe's frame once it has loaded."""
    rid = site["installs"][name].registry_id
    page.goto(f"{site['base']}/msp/extensions/{rid}/")
    page.wait_for_selector("#ext-frame[src]")
    assert page.locator("#ext-frame").get_attribute("sandbox") == SANDBOXES[site["sandbox"]]
    return page.frame_locator("#ext-frame"), rid


def ext_window(page):
    return next(f for f in page.frames if "/ext-ui/" in f.url)


def expected_origin(site) -> str:
    return site["base"] if site["sandbox"] == "same-origin" else "null"


def test_module_scripts(page, site):
    problems = Problems(page)
    frame, rid = open_ui(page, site, "module-scripts")
    frame.locator("#graph").filter(has_text="modules loaded: 2").wait_for()
    assert frame.locator("#ctx").inner_text() == f"extensionId: {rid}"
    assert ext_window(page).evaluate("() => window.origin") == expected_origin(site)
    page.wait_for_load_state("networkidle")
    assert not problems, problems
    browser_helpers.screenshot(page, f"ui-module-scripts-{site['sandbox']}")


def test_vite_build(page, site):
    problems = Problems(page)
    frame, rid = open_ui(page, site, "vite-app")
    frame.locator("#panel.ready").filter(has_text="lazy panel loaded").wait_for()  # the lazy chunk ran
    assert frame.locator("#ctx").inner_text() == f"extensionId: {rid}"
    # the host answered "ready" with a theme message; the stylesheet applies its tokens
    frame.locator("#theme").filter(has_text="theme: light (31 tokens)").wait_for()
    assert frame.locator("h1").evaluate("e => getComputedStyle(e).color") == "rgb(138, 77, 234)"
    page.locator("#theme-toggle").click()
    frame.locator("#theme").filter(has_text="theme: dark (31 tokens)").wait_for()
    page.wait_for_load_state("networkidle")
    assert not problems, problems
    browser_helpers.screenshot(page, f"ui-vite-app-{site['sandbox']}")
    page.locator("#theme-toggle").click()


def test_real_sdk_bridge(page, site):
    """The published SDK in production mode (origin checks on) against this host page."""
    problems = Problems(page)
    proxied = []
    page.on("request", lambda r: proxied.append(r) if "/api/ext-proxy/" in r.url else None)
    frame, rid = open_ui(page, site, "esbuild-sdk")
    handler = frame.locator("#handler")
    handler.filter(has_text='"method":"GET"').wait_for()  # callHandlerJson on load
    reply = json.loads(handler.inner_text())
    assert reply["path"] == "/dynamic/hello?from=sdk" and reply["tenantId"] == TENANT
    assert frame.locator("#parent-origin").inner_text() == site["base"]
    frame.locator("#session").filter(has_text="token received").wait_for()  # bootstrap passed the SDK's checks
    frame.locator("#theme").filter(has_text="#ffffff").wait_for()  # subscribeTheme got the theme message
    get = proxied[0]
    assert get.method == "GET" and get.post_data is None and "content-type" not in get.headers
    assert get.url == f"{site['base']}/api/ext-proxy/{rid}/dynamic/hello?from=sdk"

    frame.locator("#post").click()
    frame.locator("#echo").filter(has_text='"method":"POST"').wait_for()
    assert json.loads(frame.locator("#echo").inner_text())["body"] == '{"n":1}'
    post = proxied[-1]
    assert post.method == "POST" and post.post_data == '{"n":1}'
    assert post.headers["content-type"] == "application/octet-stream"  # as Alga's host bridge sends it

    page.locator("#theme-toggle").click()
    frame.locator("#theme").filter(has_text="#161622").wait_for()
    page.locator("#theme-toggle").click()
    frame.locator("#theme").filter(has_text="#ffffff").wait_for()

    url = page.url
    frame.locator("#navigate").click()
    page.locator("#debug-events .event.bridge", has_text='navigate "/reports?tab=2" ignored').wait_for()
    assert page.url == url
    page.wait_for_load_state("networkidle")
    assert not problems, problems
    browser_helpers.screenshot(page, f"ui-esbuild-sdk-{site['sandbox']}")

    frame.locator("#missing").click()  # a 404 from the gateway comes back as the SDK's rejection
    frame.locator("#error").filter(has_text="Proxy error 404: ").wait_for()
    assert "endpoint_not_found" in frame.locator("#error").inner_text()


def test_ui_calling_the_gateway_itself(page, site):
    """secrets-demo and service-proxy-demo fetch /api/ext/... from the iframe: only the same-origin
    sandbox allows it, as in Alga."""
    frame, rid = open_ui(page, site, "esbuild-sdk")
    frame.locator("#handler").filter(has_text='"method":"GET"').wait_for()
    result = ext_window(page).evaluate("""url => fetch(url, {credentials: 'include'})
        .then(r => r.json().then(j => j.method), e => 'refused: ' + e.name)""", f"/api/ext/{rid}/dynamic/x")
    if site["sandbox"] == "same-origin":
        assert result == "GET"
    else:
        assert result == "refused: TypeError"  # no CORS answer on /api/ext for origin null
