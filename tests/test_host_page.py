"""The standalone host page: bridge helpers, HTML, the debug event stream, origin rules."""
from __future__ import annotations

import json
import re
import signal
import time

import pytest
import requests
from helpers import base_config, free_port, start_gunicorn

from app import service_of as svc
from runner.messages import ExecutionIds
from settings import Settings
from standalone.host_page import bridge, views
from standalone.installer import SAMPLES

HEX = "ab" * 32


# --- bridge helpers ------------------------------------------------------------------------------

def test_iframe_src_is_built_like_the_alga_host():
    src = bridge.iframe_src("ext 1/é", f"sha256:{HEX.upper()}", "/a b/~*", "tenant one")
    assert src == (f"/ext-ui/ext%201%2F%C3%A9/sha256%3A{HEX}/index.html"
                   "?path=%2Fa+b%2F%7E*&tenant=tenant+one&extensionId=ext+1%2F%C3%A9")


def test_iframe_src_without_tenant_and_bad_hashes():
    assert bridge.iframe_src("e", f"sha256:{HEX}") == f"/ext-ui/e/sha256%3A{HEX}/index.html?path=%2F&extensionId=e"
    for bad in (HEX, f"sha256:{HEX[:-1]}", f"md5:{HEX}", f"sha256:{HEX}/.."):
        with pytest.raises(ValueError):
            bridge.iframe_src("e", bad)


@pytest.mark.parametrize("raw, expected", [
    (None, "/"), ("", "/"), ("settings", "/"), ("/settings?tab=2", "/settings?tab=2"),
    ("/a\nb", "/"), ("/" + "x" * 3000, "/"),
])
def test_client_path(raw, expected):
    assert bridge.client_path(raw) == expected


def test_session_tokens_are_signed_and_short_lived():
    signer = bridge.SessionSigner(b"k" * 32, ttl_s=60)
    session = signer.issue("tenant-a", "ext-a", now=1_700_000_000)
    assert session["expires_at"] == "2023-11-14T22:14:20Z"
    claims = signer.verify(session["token"], now=1_700_000_030)
    assert claims == {"tenant": "tenant-a", "extension": "ext-a", "exp": 1_700_000_060}
    assert signer.verify(session["token"], now=1_700_000_060) is None  # expired
    assert bridge.SessionSigner(b"x" * 32).verify(session["token"], now=1_700_000_030) is None  # other process
    payload, _, sig = session["token"].partition(".")
    assert signer.verify(payload + "." + sig[::-1], now=1_700_000_030) is None
    assert signer.verify("garbage", now=1_700_000_030) is None


def test_theme_css_has_every_token_per_theme():
    css = bridge.theme_css()
    assert css.startswith(":root {")
    assert ':root[data-theme="dark"]' in css
    for tokens in bridge.THEMES.values():
        assert set(tokens) == set(bridge.THEMES["light"])


# --- the page ------------------------------------------------------------------------------------

TENANT = "51bbbfe5-0720-4d9b-b3e5-b5b43e441a52"  # the default tenant


def install(app, folder, tenant=None):
    return svc(app).standalone.installer().install(folder, tenant, warm=False).install


def write_extension(folder, manifest, ui=True):
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"publisher": "Tests", "version": "1.0.0",
                                                      "runtime": "wasm-js@1", **manifest}))
    if ui:
        (folder / "ui").mkdir()
        (folder / "ui" / "index.html").write_text("<!doctype html><title>x</title>")
    return folder


@pytest.fixture(scope="module")
def site(shared_dirs, tmp_path_factory):
    """An app with the two samples installed for the default tenant, and a few more installs."""
    from app import create_app

    tmp = tmp_path_factory.mktemp("host-page")
    app = create_app(base_config(shared_dirs, tmp))
    app.testing = True
    registry = svc(app).standalone.registry
    hello, sdk = (install(app, folder) for folder in SAMPLES)
    plain = install(app, write_extension(tmp / "plain", {"name": "zz.plain", "ui": {"type": "iframe",
                                                                                   "entry": "ui/index.html"}}))
    install(app, write_extension(tmp / "headless", {"name": "headless"}, ui=False))
    off = install(app, write_extension(tmp / "off", {"name": "switched-off", "ui": {"type": "iframe",
                                                                                  "entry": "ui/index.html"}}))
    registry.set_enabled(off.id, False)
    registry.create_tenant("tenant-b", "Tenant B")
    yield {"app": app, "client": app.test_client(), "hello": hello, "sdk": sdk, "plain": plain, "off": off}
    svc(app).lifecycle.stop()


def nav_labels(html: str) -> list[str]:
    return re.findall(r'class="nav-item"[^>]*>([^<]+)</a>', html)


def host_config(html: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="host-config">(.*?)</script>', html, re.S)[1])


def test_index_lists_enabled_ui_installs_in_the_sidebar(site):
    r = site["client"].get("/msp/extensions")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert ">EXTENSIONS<" in html
    # appMenu label when declared, else the name; no UI-less or disabled installs; sorted by label
    assert nav_labels(html) == ["Hello World", "SDK Handler", "zz.plain"]
    assert f'href="/msp/extensions/{site["sdk"].registry_id}/?tenant={TENANT}"' in html
    assert "<iframe" not in html and "Pick an extension" in html


def test_page_headers_keep_the_token_private(site):
    r = site["client"].get(f"/msp/extensions/{site['sdk'].registry_id}/")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_extension_page_frames_the_ui_like_the_alga_host(site):
    sdk = site["sdk"]
    html = site["client"].get(f"/msp/extensions/{sdk.registry_id}/").get_data(as_text=True)
    frame = re.search(r"<iframe [^>]*>", html, re.S)[0]
    # DockerExtensionIframe's sandbox: the UI keeps its (the page's) origin
    assert 'sandbox="allow-scripts allow-same-origin allow-forms allow-popups"' in frame
    src = re.search(r'data-src="([^"]+)"', frame)[1].replace("&amp;", "&")
    assert src == (f"/ext-ui/{sdk.registry_id}/sha256%3A{sdk.hash_hex}/index.html"
                   f"?path=%2F&tenant={TENANT}&extensionId={sdk.registry_id}")
    assert re.search(r'aria-current="page">SDK Handler<', html)
    for text in ("1.0.0", sdk.content_hash, "cap:storage.kv", "cap:log.emit", 'data-path="/counter"', "/hello"):
        assert text in html


def test_host_config_carries_a_short_lived_session(site):
    sdk = site["sdk"]
    config = host_config(site["client"].get(f"/msp/extensions/{sdk.registry_id}/").get_data(as_text=True))
    assert config["tenant"] == TENANT and config["extension_id"] == sdk.registry_id and config["path"] == "/"
    assert config["any_origin"] is False
    assert config["themes"] == bridge.THEMES
    assert config["events_url"] == f"/msp/extensions/{sdk.registry_id}/events?tenant={TENANT}"
    claims = svc(site["app"]).standalone.host_page.sessions.verify(config["session"]["token"])
    assert claims["tenant"] == TENANT and claims["extension"] == sdk.registry_id
    assert config["session"]["expires_at"].endswith("Z")


def test_navigation_path_comes_from_the_page_url(site):
    rid = site["hello"].registry_id
    html = site["client"].get(f"/msp/extensions/{rid}/?path=/settings%3Ftab%3D2").get_data(as_text=True)
    assert host_config(html)["path"] == "/settings?tab=2"
    assert "?path=%2Fsettings%3Ftab%3D2&amp;tenant=" in html
    html = site["client"].get(f"/msp/extensions/{rid}/?path=relative").get_data(as_text=True)
    assert host_config(html)["path"] == "/"


def test_label_falls_back_to_the_name(site):
    html = site["client"].get(f"/msp/extensions/{site['plain'].registry_id}/").get_data(as_text=True)
    assert "<h1>zz.plain</h1>" in html and "none (UI only)" in html
    assert 'id="call-form"' not in html  # nothing to call without endpoints


def test_unknown_or_disabled_extension_is_a_404_page(site):
    for rid in ("no-such-extension", site["off"].registry_id):
        r = site["client"].get(f"/msp/extensions/{rid}/")
        html = r.get_data(as_text=True)
        assert r.status_code == 404 and "Extension not found" in html and "<iframe" not in html
        assert nav_labels(html) == ["Hello World", "SDK Handler", "zz.plain"]


def test_missing_trailing_slash_redirects(site):
    r = site["client"].get(f"/msp/extensions/{site['hello'].registry_id}")
    assert r.status_code in (301, 308) and r.location.endswith(f"/msp/extensions/{site['hello'].registry_id}/")


def test_tenant_switcher(site):
    html = site["client"].get("/msp/extensions?tenant=tenant-b").get_data(as_text=True)
    options = re.findall(r'<option value="([^"]+)"( selected)?>', html)
    assert (TENANT, "") in options and ("tenant-b", " selected") in options
    assert nav_labels(html) == [] and "No extensions yet" in html and "--tenant tenant-b" in html
    # a tenant the registry does not know is still shown, selected, rather than silently replaced
    html = site["client"].get("/msp/extensions?tenant=ghost").get_data(as_text=True)
    assert '<option value="ghost" selected>' in html
    r = site["client"].get(f"/msp/extensions/{site['hello'].registry_id}/?tenant=tenant-b")
    assert r.status_code == 404


def test_dev_flag_and_strict_sandbox(make_app):
    app = make_app(ui_bridge_any_origin=True, ui_sandbox="strict")
    hello = install(app, SAMPLES[0])
    html = app.test_client().get(f"/msp/extensions/{hello.registry_id}/").get_data(as_text=True)
    assert host_config(html)["any_origin"] is True
    assert 'sandbox="allow-scripts"' in html and "allow-same-origin" not in html


@pytest.mark.parametrize("raw, expected", [("strict", "strict"), (" Same-Origin ", "same-origin"),
                                           ("allow-scripts", "same-origin"), ("", "same-origin")])
def test_sandbox_setting(raw, expected):
    assert Settings.from_env({"EXT_UI_SANDBOX": raw}).standalone.ui_sandbox == expected


# What Alga's knative host (ExtensionIframe.tsx) puts in a theme message, name by name.
ALGA_THEME_NAMES = {
    "--alga-primary", "--alga-primary-foreground", "--alga-primary-light", "--alga-primary-dark",
    "--alga-primary-50", "--alga-primary-100", "--alga-secondary", "--alga-secondary-foreground",
    "--alga-secondary-light", "--alga-accent", "--alga-accent-foreground", "--alga-danger", "--alga-danger-dark",
    "--alga-fg", "--alga-muted-fg", "--alga-border", "--alga-border-light", "--alga-bg", "--alga-card-bg",
    "--alga-muted", "--alga-row-even", "--alga-row-odd", "--alga-row-hover", "--alga-primary-soft",
    "--alga-primary-soft-fg", "--alga-primary-soft-hover", "--alga-primary-border", "--alga-success",
    "--alga-warning", "--alga-radius", "--alga-ring"}


def test_theme_tokens_are_the_ones_alga_sends():
    for tokens in bridge.THEMES.values():
        assert set(tokens) == ALGA_THEME_NAMES
        assert all(re.fullmatch(r"#[0-9a-f]{6}", v) for k, v in tokens.items() if k not in ("--alga-radius",
                                                                                              "--alga-ring"))


def test_assets_and_theme(site):
    client = site["client"]
    css = client.get("/msp/theme.css")
    assert css.mimetype == "text/css" and "--alga-primary: #8a4dea;" in css.get_data(as_text=True)
    assert client.get("/msp/static/host.js").status_code == 200
    assert client.get("/msp/static/host.css").status_code == 200
    # a favicon, so browsers do not ask for /favicon.ico (a 404) on every load
    html = client.get("/msp/extensions").get_data(as_text=True)
    icon = re.search(r'<link rel="icon" type="image/svg\+xml" href="([^"]+)">', html)[1]
    r = client.get(icon)
    assert r.status_code == 200 and r.mimetype == "image/svg+xml" and b"<svg" in r.data


# --- the debug event stream ----------------------------------------------------------------------

def emit(app, extension, message, tenant=TENANT, **fields):
    svc(app).debug.publish(ExecutionIds(tenant, extension, request="r-1"),
                                             {"level": "info", "stream": "log", "message": message, **fields})


def chunks(response):
    for chunk in response.response:
        yield chunk.decode() if isinstance(chunk, bytes) else chunk


def test_events_stream_recent_then_live(site, monkeypatch):
    monkeypatch.setattr(views, "KEEPALIVE_S", 0.05)
    monkeypatch.setattr(views, "POLL_S", 0.01)
    app, rid = site["app"], site["sdk"].registry_id
    emit(app, rid, "before", ts=1000)
    emit(app, rid, "other tenant", tenant="tenant-b", ts=1001)
    emit(app, site["hello"].registry_id, "other extension", ts=1002)
    r = site["client"].get(f"/msp/extensions/{rid}/events?tenant={TENANT}", buffered=False)
    try:
        assert r.status_code == 200 and r.mimetype == "text/event-stream"
        assert r.headers["Cache-Control"] == "no-store"
        stream = chunks(r)
        assert next(stream) == "retry: 3000\n\n"
        first = next(stream)
        assert first.startswith("id: 1000\ndata: ") and first.endswith("\n\n")
        event = json.loads(first.split("data: ", 1)[1])
        assert event["message"] == "before" and event["tenant"] == TENANT and event["request"] == "r-1"
        assert next(stream) == ": keep-alive\n\n"  # nothing else recent, silence
        emit(app, rid, "hello from sdk-handler", level="error", stream="stderr")
        live = next(c for c in stream if c.startswith("id:"))
        assert json.loads(live.split("data: ", 1)[1])["message"] == "hello from sdk-handler"
    finally:
        r.close()
    assert not svc(app).executor.debug._subscribers.get(f"ext-debug:{TENANT}:{rid}")



def test_events_closed_early_leave_no_subscriber(site):
    app, rid = site["app"], site["hello"].registry_id
    r = site["client"].get(f"/msp/extensions/{rid}/events", buffered=False)
    assert next(chunks(r)) == "retry: 3000\n\n"
    r.close()  # the browser went away before any event was read
    assert not svc(app).executor.debug._subscribers.get(f"ext-debug:{TENANT}:{rid}")

def test_events_reconnect_skips_what_was_seen(site, monkeypatch):
    monkeypatch.setattr(views, "KEEPALIVE_S", 0.05)
    monkeypatch.setattr(views, "POLL_S", 0.01)
    app, rid = site["app"], site["plain"].registry_id
    for ts in (2000, 2001, 2002):
        emit(app, rid, f"m{ts}", ts=ts)
    r = site["client"].get(f"/msp/extensions/{rid}/events", headers={"Last-Event-ID": "2001"}, buffered=False)
    try:
        stream = chunks(r)
        next(stream)
        assert next(stream).startswith("id: 2002\n")
        assert next(stream) == ": keep-alive\n\n"
    finally:
        r.close()


def test_events_end_when_the_worker_drains(site, monkeypatch):
    monkeypatch.setattr(views, "POLL_S", 0.01)
    app = site["app"]
    r = site["client"].get(f"/msp/extensions/{site['hello'].registry_id}/events", buffered=False,
                           headers={"Last-Event-ID": str(2**53)})  # no recent events
    try:
        stream = chunks(r)
        assert next(stream) == "retry: 3000\n\n"
        svc(app).lifecycle.drain()
        assert list(stream) == []  # the generator returned: the browser reconnects to another worker
    finally:
        svc(app).lifecycle.draining = False  # the module's other tests share this app
        r.close()


def test_events_of_unknown_extension_are_404(site):
    r = site["client"].get("/msp/extensions/nope/events")
    assert r.status_code == 404
    r = site["client"].get(f"/msp/extensions/{site['sdk'].registry_id}/events?tenant=tenant-b")
    assert r.status_code == 404


@pytest.fixture
def gunicorn(shared_dirs, tmp_path):
    """Gunicorn (gevent worker, repository config) serving hello-world; yields (base URL, registry id, process)."""
    from app import create_app

    config = base_config(shared_dirs, tmp_path)
    app = create_app(config)
    rid = install(app, SAMPLES[0]).registry_id
    svc(app).lifecycle.stop()
    env = {"PORT": str(free_port()), "BUNDLE_STORE_BASE": config["bundle_store_base"],
           "EXT_CACHE_ROOT": config["cache_root"], "EXT_REGISTRY_DB": config["registry_db"],
           "EXT_SECRETS_KEY_FILE": config["secrets_key_file"], "EXT_WORKERS": "1", "EXT_INSTALL_SAMPLES": "false",
           "EXT_SCHEDULER_ENABLED": "false", "WEB_CONCURRENCY": "1"}
    proc, base = start_gunicorn(env, tmp_path / "server.log")
    try:
        yield base, rid, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def open_streams(base, rid, count=3):
    streams = []
    for _ in range(count):
        r = requests.get(f"{base}/msp/extensions/{rid}/events", stream=True, timeout=10)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        assert next(r.iter_lines(decode_unicode=True)) == "retry: 3000"
        streams.append(r)
    return streams


@pytest.mark.slow
def test_open_event_streams_do_not_block_gunicorn(gunicorn):
    """Under the gevent worker an idle SSE connection waits cooperatively: other requests still run."""
    base, rid, _ = gunicorn
    streams = open_streams(base, rid)
    try:
        started = time.monotonic()
        assert requests.get(f"{base}/msp/extensions/{rid}/", timeout=5).status_code == 200
        assert requests.get(f"{base}/livez", timeout=5).ok
        assert time.monotonic() - started < 2
    finally:
        for r in streams:
            r.close()


@pytest.mark.slow
def test_open_event_streams_end_when_gunicorn_stops(gunicorn):
    """SIGTERM with streams open: each stream is ended by the server (not cut by the client), and Gunicorn
    exits cleanly long before its graceful_timeout (30 s) would force it."""
    base, rid, proc = gunicorn
    streams = open_streams(base, rid)
    try:
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        for r in streams:  # each iterator finishes: the server closed the stream after draining
            assert [line for line in r.iter_lines(decode_unicode=True) if line and not line.startswith(":")] == []
        assert proc.wait(10) == 0
        assert time.monotonic() - started < 10
    finally:
        for r in streams:
            r.close()


def test_attached_mode_has_no_host_page(make_app):
    client = make_app(registry_base_url="http://alga.example").test_client()
    assert client.get("/msp/extensions").status_code == 404
