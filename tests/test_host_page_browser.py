"""The host page in Debian's Chromium (Playwright): sidebar, sandboxed iframe, bridge, debug console.

The app serves on a real port (werkzeug, threaded) with both samples installed.
Screenshots land in test-artifacts/ (git-ignored) for a human to look at.
"""
from __future__ import annotations

import base64
import re
from pathlib import Path

import browser_helpers
import pytest
import requests
from browser_helpers import browser  # noqa: F401 (fixture)

from app import service_of as svc
from standalone.host_page.bridge import iframe_src

pytestmark = [pytest.mark.slow, pytest.mark.browser]

TENANT = "51bbbfe5-0720-4d9b-b3e5-b5b43e441a52"


def screenshot(page, name: str) -> Path:
    return browser_helpers.screenshot(page, f"host-page-{name}")


@pytest.fixture(scope="module")
def server(shared_dirs, tmp_path_factory):
    from helpers import base_config

    from app import create_app
    from standalone.installer import SAMPLES

    app = create_app({**base_config(shared_dirs, tmp_path_factory.mktemp("browser")),
                      "static_strict_validation": True})
    installer = svc(app).standalone.installer()
    installs = {folder.name: installer.install(folder).install for folder in SAMPLES}
    with browser_helpers.serving(app) as base:
        hello = installs["hello-world"]
        r = requests.get(base + iframe_src(hello.registry_id, hello.content_hash, "/", TENANT), timeout=10)
        assert r.status_code == 200, f"/ext-ui does not serve the sample UI ({r.status_code}); is it registered?"
        yield {"base": base, "installs": installs}
    svc(app).lifecycle.stop()


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
    # as DockerExtensionIframe: buildExtUiSrc's URL resolved against the page, plus parentOrigin
    expected = page.evaluate(
        """([id, hash, tenant]) => {
            const params = new URLSearchParams({path: '/'});
            params.set('tenant', tenant);
            params.set('extensionId', id);
            const url = new URL(`/ext-ui/${encodeURIComponent(id)}/${encodeURIComponent(hash)}/index.html?${params}`,
                                location.href);
            url.searchParams.set('parentOrigin', location.origin);
            return url.toString();
        }""", [rid, install.content_hash, TENANT])
    frame = page.locator("#ext-frame")
    assert frame.get_attribute("src") == expected
    assert expected.endswith("&parentOrigin=" + server["base"].replace(":", "%3A").replace("/", "%2F"))
    assert frame.get_attribute("sandbox") == "allow-scripts allow-same-origin allow-forms allow-popups"
    assert frame_eval(page, "() => window.origin") == server["base"]  # Alga's docker sandbox: same origin


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
    # Two more frames of the same UI: one with the real one's sandbox (same origin too, so only the
    # source check stops it) and one opaque; then the page itself.
    sandbox = page.locator("#ext-frame").get_attribute("sandbox")
    for name, sandbox in (("twin", sandbox), ("opaque", "allow-scripts")):
        page.evaluate("""([name, sandbox, src]) => new Promise(done => {
            const other = document.createElement('iframe');
            other.name = name;
            other.sandbox = sandbox;
            other.src = src;
            other.onload = done;
            document.body.appendChild(other);
        })""", [name, sandbox, page.locator("#ext-frame").get_attribute("src")])
        intruder = page.frame(name=name)
        post_to_parent(intruder, envelope("resize", {"height": 1234}))
        post_to_parent(intruder, envelope("apiproxy", {"route": "/hello", "method": "GET"}, request_id="x"))
    assert page.frame(name="opaque").evaluate("() => window.origin") == "null"
    assert page.frame(name="twin").evaluate("() => window.origin") == server["base"]
    page.evaluate("m => window.postMessage(m, '*')", envelope("resize", {"height": 2345}))
    # ...while the extension's own window is heard, even without the envelope (as Alga's host bridge),
    # with a warning in the debug console; sent last, so the ones before had their chance
    post_to_parent(ext_window(page), {"type": "resize", "payload": {"height": 321}})
    page.wait_for_function("() => document.getElementById('ext-frame').style.height === '321px'")
    page.locator("#debug-events .event.bridge", has_text="resize without the {alga: true").wait_for()
    assert proxied == []


def test_apiproxy_errors_come_back_as_errors(page, server):
    open_extension(page, server, "sdk-handler")
    ext_frame(page).locator("#nav-path").filter(has_text="/").wait_for()
    ask = """([route, method, body]) => new Promise(done => {
        const id = 'q-' + Math.random();
        addEventListener('message', e => { if (e.data && e.data.request_id === id) done(e.data); });
        setTimeout(() => done('no reply'), 1500);
        parent.postMessage({alga: true, version: '1', type: 'apiproxy', request_id: id,
                            payload: {route, method, body}}, '*');
    })"""
    answer = frame_eval(page, ask, ["/../../v1/execute", "GET", None])
    assert answer["type"] == "apiproxy_response" and answer["payload"] == {"error": "Invalid proxy route"}
    answer = frame_eval(page, ask, ["/%2e%2e/healthz", "GET", None])
    assert answer["payload"] == {"error": "Invalid proxy route"}
    answer = frame_eval(page, ask, ["/counter", "POST", "not base64!"])
    assert "atob" in answer["payload"]["error"]  # the browser's own message, as Alga's host passes it on
    # Alga's host throws before it could reply: the SDK times out; the debug console says why
    assert frame_eval(page, ask, ["/hello", "TRACE", None]) == "no reply"
    page.locator("#debug-events .event.bridge", has_text='unsupported method "TRACE"').wait_for()
    answer = frame_eval(page, ask, ["/nope", "GET", None])
    error = answer["payload"]["error"]
    assert error.startswith("Proxy error 404: ") and "endpoint_not_found" in error
    answer = frame_eval(page, ask, ["/counter", "GET", None])
    assert set(answer["payload"]) == {"body"}
    # no method: POST, as older SDKs sent it (and a route without its leading "/")
    answer = frame_eval(page, ask, ["counter", None, None])
    assert '"count"' in base64.b64decode(answer["payload"]["body"]).decode()


def test_navigate_is_ignored_as_alga_does(page, server):
    rid = open_extension(page, server, "sdk-handler")
    frame = ext_frame(page)
    frame.locator("#nav-path").filter(has_text="/").wait_for()
    url = page.url
    post_to_parent(ext_window(page), envelope("navigate", {"path": "/reports?x=1"}))
    page.locator("#debug-events .event.bridge", has_text='navigate "/reports?x=1" ignored').wait_for()
    assert page.url == url and page.locator("#nav-path").inner_text() == "/"
    # the page's own ?path= still opens the UI at a path (bootstrap and iframe URL carry it)
    page.goto(f"{server['base']}/msp/extensions/{rid}/?path=/reports")
    ext_frame(page).locator("#nav-path").filter(has_text="/reports").wait_for()
    assert "path=%2Freports" in page.locator("#ext-frame").get_attribute("src")


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


def test_theme_toggle_sends_theme(page, server):
    open_extension(page, server, "hello-world")
    ext_frame(page).locator("#tenant").filter(has_text=TENANT).wait_for()
    frame_eval(page, """() => { window.got = [];
        addEventListener('message', e => { if (e.source === parent) window.got.push(e.data); }); }""")
    page.locator("#theme-toggle").click()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    ext_window(page).wait_for_function("() => window.got.length > 0")
    got = frame_eval(page, "() => window.got[0]")
    # as Alga's host: type "theme", the token map itself as the payload
    assert got["type"] == "theme" and got["alga"] is True and got["payload"]["--alga-bg"] == "#161622"
    assert len(got["payload"]) == 31
    screenshot(page, "dark")
    page.locator("#theme-toggle").click()
    assert page.evaluate("document.documentElement.dataset.theme") is None
