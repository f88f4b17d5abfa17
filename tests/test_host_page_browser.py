"""The host page in Debian's Chromium (Playwright): sidebar, sandboxed iframe, bridge, debug console.

The app serves on a real port (werkzeug, threaded) with both samples installed.
Screenshots land in test-artifacts/ (git-ignored) for a human to look at.
"""
from __future__ import annotations

from app import service_of as svc
import re
import shutil
import tempfile
import threading
from pathlib import Path

import pytest
import requests

from helpers import ROOT
from standalone.host_page.bridge import iframe_src

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = ROOT / "test-artifacts"
TENANT = "51bbbfe5-0720-4d9b-b3e5-b5b43e441a52"
TIMEOUT_MS = 30_000  # generous: the component is compiled when the fixture installs it


def screenshot(page, name: str) -> Path:
    """Save a PNG of the viewport under test-artifacts/ and return its path.

    Not ``full_page``: Chromium then leaves the sandboxed (out-of-process) iframe blank.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"host-page-{name}.png"
    page.screenshot(path=str(path))
    return path


@pytest.fixture(scope="module")
def server(shared_dirs, tmp_path_factory):
    from werkzeug.serving import make_server

    from app import create_app
    from helpers import base_config
    from standalone.installer import SAMPLES

    app = create_app({**base_config(shared_dirs, tmp_path_factory.mktemp("browser")),
                      "static_strict_validation": True})
    installer = svc(app).standalone.installer()
    installs = {folder.name: installer.install(folder).install for folder in SAMPLES}
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_port}"
    hello = installs["hello-world"]
    r = requests.get(base + iframe_src(hello.registry_id, hello.content_hash, "/", TENANT), timeout=10)
    assert r.status_code == 200, f"/ext-ui does not serve the sample UI ({r.status_code}); is it registered?"
    yield {"base": base, "installs": installs}
    httpd.shutdown()
    svc(app).lifecycle.stop()


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


@pytest.fixture
def page(browser):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def open_extension(page, server, name: str) -> str:
    rid = server["installs"][name].registry_id
    page.goto(f"{server['base']}/msp/extensions/{rid}/")
    return rid


def ext_frame(page):
    """A locator scope inside the extension's iframe, once the host has set its src."""
    page.wait_for_selector("#ext-frame[src]")
    return page.frame_locator("#ext-frame")


def ext_window(page):
    """The extension iframe's own window (an opaque-origin sandbox), for evaluating scripts in it."""
    frame = page.frame(url=re.compile(r"/ext-ui/"))
    assert frame is not None
    return frame


def frame_eval(page, script: str, arg=None):
    return ext_window(page).evaluate(script, arg)


def envelope(type_: str, payload: dict, **extra) -> dict:
    return {"alga": True, "version": "1", "type": type_, "payload": payload, **extra}


def post_to_parent(frame, message: dict) -> None:
    """``parent.postMessage(message, "*")`` from ``frame``'s window."""
    frame.evaluate("m => parent.postMessage(m, '*')", message)


def test_sidebar_lists_the_samples_and_clicking_loads_the_ui(page, server):
    page.goto(f"{server['base']}/msp/extensions")
    items = page.locator(".sidebar .nav-item")
    assert items.all_inner_texts() == ["Hello World", "SDK Handler"]
    assert page.locator(".nav-section").inner_text() == "EXTENSIONS"
    screenshot(page, "index")

    page.get_by_role("link", name="Hello World").click()
    page.wait_for_url(re.compile(r"/msp/extensions/[^/]+/\?tenant="))
    frame = ext_frame(page)
    # the hello-world UI shows the tenant and extensionId query parameters of its URL
    assert frame.locator("#tenant").inner_text() == TENANT
    assert frame.locator("#extension-id").inner_text() == server["installs"]["hello-world"].registry_id
    assert page.locator(".nav-item[aria-current=page]").inner_text() == "Hello World"
    screenshot(page, "hello-world")


def test_iframe_src_matches_the_browsers_own_encoding(page, server):
    rid = open_extension(page, server, "sdk-handler")
    ext_frame(page)
    install = server["installs"]["sdk-handler"]
    expected = page.evaluate(
        """([id, hash, tenant]) => {
            const params = new URLSearchParams({path: '/'});
            params.set('tenant', tenant);
            params.set('extensionId', id);
            return `/ext-ui/${encodeURIComponent(id)}/${encodeURIComponent(hash)}/index.html?${params}`;
        }""", [rid, install.content_hash, TENANT])
    frame = page.locator("#ext-frame")
    assert frame.get_attribute("src") == expected
    assert frame.get_attribute("sandbox") == "allow-scripts"
    assert frame_eval(page, "() => window.origin") == "null"  # opaque: the sandbox holds


def test_apiproxy_round_trip_and_debug_log(page, server):
    open_extension(page, server, "sdk-handler")
    frame = ext_frame(page)
    page.wait_for_selector("#debug-state.live")
    frame.locator("#nav-path").filter(has_text="/").wait_for()  # bootstrap arrived through "*"

    frame.locator("#call-handler").click()
    result = frame.locator("#handler-result")
    result.filter(has_text="Hello from the SDK handler").wait_for()
    assert TENANT in result.inner_text()
    # the handler's log line reaches the console over SSE; the bridge logs the forward itself
    events = page.locator("#debug-events")
    events.locator(".event", has_text=f"hello from sdk-handler for {TENANT}").wait_for()
    events.locator(".event.bridge", has_text="apiproxy GET /hello -> 200").wait_for()

    frame.locator("#increment").click()
    result.filter(has_text='"count"').wait_for()
    count = int(re.search(r'"count": (\d+)', result.inner_text())[1])
    frame.locator("#increment").click()
    result.filter(has_text=f'"count": {count + 1}').wait_for()
    screenshot(page, "sdk-handler")


def test_resize_is_clamped(page, server):
    open_extension(page, server, "sdk-handler")
    ext_frame(page).locator("#nav-path").filter(has_text="/").wait_for()
    frame = page.locator("#ext-frame")

    for sent, shown in ((640, "640px"), (9000, "4000px"), (5, "100px"), (777.9, "777px")):
        post_to_parent(ext_window(page), envelope("resize", {"height": sent}))
        page.wait_for_function("h => document.getElementById('ext-frame').style.height === h", arg=shown)
    assert frame.bounding_box()["height"] == 777


def test_messages_from_other_windows_are_ignored(page, server):
    open_extension(page, server, "hello-world")
    ext_frame(page).locator("#tenant").filter(has_text=TENANT).wait_for()
    proxied = []
    page.on("request", lambda r: proxied.append(r.url) if "/api/ext-proxy/" in r.url else None)
    # Two more frames of the same UI: one sandboxed like the real one (origin "null" too, so only the
    # source check stops it) and one same-origin; then the page itself.
    for name, sandbox in (("opaque", "allow-scripts"), ("same-origin", None)):
        page.evaluate("""([name, sandbox, src]) => new Promise(done => {
            const other = document.createElement('iframe');
            other.name = name;
            if (sandbox) other.sandbox = sandbox;
            other.src = src;
            other.onload = done;
            document.body.appendChild(other);
        })""", [name, sandbox, page.locator("#ext-frame").get_attribute("src")])
        intruder = page.frame(name=name)
        post_to_parent(intruder, envelope("resize", {"height": 1234}))
        post_to_parent(intruder, envelope("apiproxy", {"route": "/hello", "method": "GET"}, request_id="x"))
    assert page.frame(name="opaque").evaluate("() => window.origin") == "null"
    page.evaluate("m => window.postMessage(m, '*')", envelope("resize", {"height": 2345}))
    # the extension's own window with a wrong envelope is ignored too
    post_to_parent(ext_window(page), {"type": "resize", "payload": {"height": 3456}})
    post_to_parent(ext_window(page), {**envelope("resize", {"height": 3457}), "version": "2"})
    # ...while a valid one, sent last, is applied: so the ones before had their chance
    post_to_parent(ext_window(page), envelope("resize", {"height": 321}))
    page.wait_for_function("() => document.getElementById('ext-frame').style.height === '321px'")
    assert proxied == []


def test_apiproxy_errors_come_back_as_errors(page, server):
    open_extension(page, server, "sdk-handler")
    ext_frame(page).locator("#nav-path").filter(has_text="/").wait_for()
    ask = """([route, method]) => new Promise(done => {
        const id = 'q-' + Math.random();
        addEventListener('message', e => { if (e.data && e.data.request_id === id) done(e.data); });
        parent.postMessage({alga: true, version: '1', type: 'apiproxy', request_id: id,
                            payload: {route, method}}, '*');
    })"""
    answer = frame_eval(page, ask, ["/../../v1/execute", "GET"])
    assert answer["type"] == "apiproxy_response" and answer["payload"] == {"error": "Invalid proxy route"}
    answer = frame_eval(page, ask, ["/%2e%2e/healthz", "GET"])
    assert answer["payload"] == {"error": "Invalid proxy route"}
    answer = frame_eval(page, ask, ["/hello", "TRACE"])
    assert answer["payload"]["error"].startswith("Unsupported proxy method")
    answer = frame_eval(page, ask, ["/nope", "GET"])
    error = answer["payload"]["error"]
    assert error.startswith("Proxy error 404: ") and "endpoint_not_found" in error
    answer = frame_eval(page, ask, ["/counter", "GET"])
    assert set(answer["payload"]) == {"body"}


def test_navigate_is_reflected_in_the_page_url(page, server):
    rid = open_extension(page, server, "sdk-handler")
    frame = ext_frame(page)
    frame.locator("#nav-path").filter(has_text="/").wait_for()
    post_to_parent(ext_window(page), envelope("navigate", {"path": "/reports?x=1"}))
    page.wait_for_url(re.compile(r"path=%2Freports%3Fx%3D1"))
    assert page.locator("#nav-path").inner_text() == "/reports?x=1"
    post_to_parent(ext_window(page), envelope("navigate", {"path": "no-slash"}))
    page.reload()
    # after a reload the bootstrap carries the path, and the iframe URL has it too
    ext_frame(page).locator("#nav-path").filter(has_text="/reports?x=1").wait_for()
    assert "path=%2Freports%3Fx%3D1" in page.locator("#ext-frame").get_attribute("src")
    assert rid in page.url


def test_call_endpoint_form(page, server):
    open_extension(page, server, "sdk-handler")
    page.locator(".endpoint[data-method=POST][data-path='/counter']").click()
    page.locator("#call-body").fill("{}")
    page.get_by_role("button", name="Send").click()
    page.locator("#call-status.ok").filter(has_text="200").wait_for()
    assert re.search(r'"count": \d+', page.locator("#call-body-out").inner_text())
    assert "content-type: application/json" in page.locator("#call-headers").text_content()

    page.locator("#call-method").select_option("GET")
    page.locator("#call-path").fill("/missing")
    page.get_by_role("button", name="Send").click()
    page.locator("#call-status.error").filter(has_text="404").wait_for()
    assert "endpoint_not_found" in page.locator("#call-body-out").inner_text()
    screenshot(page, "call-endpoint")


def test_theme_toggle_sends_theme_tokens(page, server):
    open_extension(page, server, "hello-world")
    ext_frame(page).locator("#tenant").filter(has_text=TENANT).wait_for()
    frame_eval(page, """() => { window.got = [];
        addEventListener('message', e => { if (e.source === parent) window.got.push(e.data); }); }""")
    page.locator("#theme-toggle").click()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    ext_window(page).wait_for_function("() => window.got.length > 0")
    got = frame_eval(page, "() => window.got[0]")
    assert got["type"] == "theme_tokens" and got["payload"]["--alga-bg"] == "#161622"
    screenshot(page, "dark")
    page.locator("#theme-toggle").click()
    assert page.evaluate("document.documentElement.dataset.theme") is None
