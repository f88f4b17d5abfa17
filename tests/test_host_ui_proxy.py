"""alga:extension/ui-proxy (reference §4.6, scenarios 17-19, DECISIONS 7)."""
import base64
import dataclasses
import json
import time

import pytest
from fakes import FakeServer, Guest, wire_bytes
from helpers import base_config, call_context, decoded_body

from app import service_of as svc
from runner.worker.host import ui_proxy
from runner.worker.wasm_compat import Err
from settings import Settings

CAP = ["cap:ui.proxy"]


def backend_handler(req):
    if req.path.startswith("/api/ui-proxy/ext-ok/"):
        route = req.path[len("/api/ui-proxy/ext-ok/"):]
        return 200, {}, {"ok": True, "route": route}
    if req.path.startswith("/status/"):
        return int(req.path.rsplit("/", 1)[1]), {}, b"status"
    if req.path == "/slow/ext-ok/x":
        time.sleep(1.5)
        return 200, {}, b"late"
    return 200, {}, b"raw:" + req.path.encode()


@pytest.fixture(scope="module")
def backend():
    with FakeServer(backend_handler) as s:
        yield s


@pytest.fixture(scope="module")
def app(shared_dirs, tmp_path_factory, backend):
    from app import create_app

    app = create_app({**base_config(shared_dirs, tmp_path_factory.mktemp("uiproxy")), "workers": 1,
                      "ui_proxy_base_url": f"{backend.url}/api/ui-proxy", "ui_proxy_auth_key": "proxy-secret",
                      "ui_proxy_timeout_ms": 2000})
    app.testing = True
    yield app
    svc(app).lifecycle.stop()


@pytest.fixture(scope="module")
def guest(app, sdk_wasm):
    return Guest(app, sdk_wasm, tenant="tenant-ok", extension="ext-ok")


# -- the reference's scenarios, with its fixture route /dynamic/ui-proxy ---------------------

@pytest.mark.slow
def test_ui_proxy_forwards_request(guest, backend):
    """Scenario 18, including the x-runner-auth header the reference's own test expects."""
    out = guest.execute("/dynamic/ui-proxy", json.dumps({"limit": 5}).encode(), providers=CAP,
                        context={"request_id": "ui-proxy-ok"})
    body = decoded_body(out)
    assert body["ok"] is True, body
    assert body["proxy"] == {"response": {"ok": True, "route": "proxy/ping"}, "error": None}
    sent = backend.requests[-1]
    assert sent.method == "POST" and sent.path == "/api/ui-proxy/ext-ok/proxy/ping"
    assert sent.headers["x-alga-tenant"] == "tenant-ok"
    assert sent.headers["x-alga-extension"] == "ext-ok"
    assert sent.headers["x-runner-auth"] == "proxy-secret"
    assert sent.headers["x-request-id"] == "ui-proxy-ok"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["x-ext-install-id"] == "install-1" and sent.headers["x-ext-version-id"] == "v1"
    assert json.loads(sent.body) == {"limit": 5}


@pytest.mark.slow
def test_ui_proxy_capability_denied(guest, backend):
    """Scenario 17."""
    before = len(backend.requests)
    body = decoded_body(guest.execute("/dynamic/ui-proxy", b"{}"))
    assert body["ok"] is False and "denied" in body["proxy"]["error"]
    assert len(backend.requests) == before


@pytest.mark.slow
def test_ui_proxy_route_not_found_without_backend(make_app, sdk_wasm):
    """Scenario 19: a backend that always answers 404."""
    with FakeServer(lambda req: (404, {}, b"no")) as missing:
        g = Guest(make_app(workers=1, ui_proxy_base_url=f"{missing.url}/api/ui-proxy"), sdk_wasm,
                  tenant="tenant-ok", extension="ext-ok")
        body = decoded_body(g.execute("/dynamic/ui-proxy", b"{}", providers=CAP))
    assert body["ok"] is False and "route" in body["proxy"]["error"]


@pytest.mark.slow
def test_unset_base_is_route_not_found(make_app, sdk_wasm):
    g = Guest(make_app(workers=1), sdk_wasm, tenant="tenant-ok", extension="ext-ok")
    assert g.call("ui-proxy", "call-route", "/x", None, providers=CAP) == {"err": "route-not-found"}


# -- /call: GET without payload, secrets and user headers, errors ----------------------------

@pytest.mark.slow
def test_get_without_payload_and_forwarded_identity(guest, backend):
    envelope = {"ciphertext_b64": base64.b64encode(b'{"api_key": "ak-123"}').decode()}
    user = {"user_id": "u-9", "user_email": "u9@example.com", "user_name": "U", "user_type": "internal"}
    out = guest.call("ui-proxy", "call-route", "items/list?page=2&q=a%20b", None, providers=CAP,
                     secret_envelope=envelope, user=user)
    assert json.loads(out["ok"]) == {"ok": True, "route": "items/list?page=2&q=a%20b"}
    sent = backend.requests[-1]
    assert sent.method == "GET" and sent.body == b""
    assert "content-type" not in sent.headers
    assert sent.headers["x-api-key"] == "ak-123"  # the api_key secret, even without cap:secrets.get
    assert sent.headers["x-user-id"] == "u-9" and sent.headers["x-user-email"] == "u9@example.com"


@pytest.mark.slow
def test_empty_payload_is_still_a_post(guest, backend):
    guest.call("ui-proxy", "call-route", "/p", wire_bytes(b""), providers=CAP)
    assert backend.requests[-1].method == "POST" and backend.requests[-1].path == "/api/ui-proxy/ext-ok/p"


@pytest.mark.slow
def test_route_errors(guest):
    call = lambda route: guest.call("ui-proxy", "call-route", route, None, providers=CAP)  # noqa: E731
    assert call("   ") == {"err": "bad-request"}
    assert call("/a/../b") == {"err": "bad-request"}
    assert call("/a/./b") == {"err": "bad-request"}


# -- in process: URL building, status mapping, redirects, timeout ----------------------------

@pytest.mark.parametrize("base,route,url", [
    ("http://h/api/ui-proxy", "/proxy/ping", "http://h/api/ui-proxy/ext-ok/proxy/ping"),
    ("http://h/api/ui-proxy/", "proxy/ping", "http://h/api/ui-proxy/ext-ok/proxy/ping"),
    ("http://h:3000", "/api/v1/clients?x=1", "http://h:3000/api/v1/clients?x=1"),
    ("http://h:3000/", "api/v1/clients", "http://h:3000/api/v1/clients"),
    ("http://h", "/apiary", "http://h/ext-ok/apiary"),
    ("http://h/base", "//a///b/", "http://h/base/ext-ok/a/b"),
    ("http://h", "/a b/c%2Fd/é", "http://h/ext-ok/a%20b/c%252Fd/%C3%A9"),
    ("http://h", "/x?", "http://h/ext-ok/x"),
    ("http://h?old=1", "/x", "http://h/ext-ok/x"),
    ("http://h", "/a:b@c!$&'()*+,;=", "http://h/ext-ok/a:b@c!$&'()*+,;="),
])
def test_build_url(base, route, url):
    assert ui_proxy.build_url(base, "ext-ok", route) == url


def test_build_url_rejects():
    with pytest.raises(ui_proxy.BadRoute):
        ui_proxy.build_url("http://h", "e", "/a/../b")
    with pytest.raises(ValueError):
        ui_proxy.build_url("not a url", "e", "/a")


@pytest.mark.parametrize("status,code", [(400, "bad-request"), (401, "denied"), (403, "denied"),
                                         (404, "route-not-found"), (405, "bad-request"), (429, "denied"),
                                         (500, "internal"), (503, "internal")])
def test_status_mapping(backend, status, code):
    ctx = ctx_for(f"{backend.url}/status")
    out = ui_proxy.call_route(ctx, f"/{status}", None)
    assert isinstance(out, Err) and out.payload == code


def ctx_for(base, **settings):
    s = Settings.from_env({}, **{"ui_proxy_base_url": base, "ui_proxy_auth_key": "proxy-secret", **settings})
    return call_context(s, tenant="tenant-ok", extension="ext-ok", install="i", grants={"cap:ui.proxy"},
                        secrets={"api_key": "ak"})


def test_missing_tenant_or_extension_is_internal(backend):
    ctx = ctx_for(backend.url)
    ctx.ids = dataclasses.replace(ctx.ids, tenant="")
    assert ui_proxy.call_route(ctx, "/x", None).payload == "internal"


def test_invalid_base_is_route_not_found():
    assert ui_proxy.call_route(ctx_for("ftp://h/x"), "/x", None).payload == "route-not-found"


def test_transport_failure_and_timeout(backend):
    from helpers import free_port

    assert ui_proxy.call_route(ctx_for(f"http://127.0.0.1:{free_port()}"), "/x", None).payload == "internal"
    started = time.monotonic()
    out = ui_proxy.call_route(ctx_for(f"{backend.url}/slow", ui_proxy_timeout_ms=300), "/x", None)
    assert out.payload == "internal" and time.monotonic() - started < 1.2


def test_redirects_are_followed_but_credentials_stay_on_the_origin(backend):
    with FakeServer(lambda req: (200, {}, json.dumps(req.headers).encode())) as other:
        def redirecting(req):
            return 302, [("location", f"{other.url}/landing")], b""

        with FakeServer(redirecting) as first:
            landed = json.loads(ui_proxy.call_route(ctx_for(first.url), "/x", None))
        assert "x-runner-auth" not in landed and "x-api-key" not in landed
        assert landed["x-alga-tenant"] == "tenant-ok"
    with FakeServer(lambda req: (302, [("location", "/final")], b"") if req.path != "/final"
                    else (200, {}, json.dumps(req.headers).encode())) as same_origin:
        landed = json.loads(ui_proxy.call_route(ctx_for(same_origin.url), "/x", None))
        assert landed["x-runner-auth"] == "proxy-secret" and landed["x-api-key"] == "ak"


def test_zero_timeout_means_default(backend):
    ctx = ctx_for(backend.url, ui_proxy_timeout_ms=0)
    assert ui_proxy.call_route(ctx, "/x", None) == b"raw:/ext-ok/x"


# -- standalone: UI_PROXY_ROUTES_FILE ----------------------------------------------------------

ROUTES = {
    "GET /api/v1/platform-reports": {"json": {"data": [{"report_id": "r-1"}]}},
    "POST /api/v1/platform-reports": {"status": 201, "json": {"report_id": "r-2"}},
    "DELETE /api/v1/platform-reports/:id": {"status": 403, "json": {"error": "no"}},
    "/api/v1/platform-reports/:id": {"json": {"report_id": "r-1", "name": "Usage"}},
    "/tickets/*": {"body": "tickets"},
    "/empty": {"status": 204},
}


def routes_ctx(tmp_path, doc, *, attached=False, base=""):
    path = tmp_path / "routes.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    overrides = {"ui_proxy_routes_file": str(path), "ui_proxy_base_url": base}
    if attached:
        overrides["registry_base_url"] = "http://127.0.0.1:9"
    s = Settings.from_env({}, **overrides)
    return call_context(s, tenant="t", extension="e", grants={"cap:ui.proxy"}), path


@pytest.mark.parametrize("route, payload, answer", [
    ("/api/v1/platform-reports", None, {"data": [{"report_id": "r-1"}]}),
    ("/api/v1/platform-reports?limit=5", None, {"data": [{"report_id": "r-1"}]}),  # the query is not matched
    ("/api/v1/platform-reports", b'{"name": "x", "__method": "POST"}', {"report_id": "r-2"}),
    ("/api/v1/platform-reports", b"{}", {"report_id": "r-2"}),  # a payload makes it a POST
    ("api/v1/platform-reports/abc/", b'{"__method": "PUT"}', {"report_id": "r-1", "name": "Usage"}),
    ("/tickets/list/open", b"{}", "tickets"),
    ("/tickets", None, "tickets"),  # a final * matches any number of segments, none included
    ("/empty", None, None),
])
def test_routes_file_answers(tmp_path, route, payload, answer):
    ctx, _ = routes_ctx(tmp_path, ROUTES)
    out = ui_proxy.call_route(ctx, route, payload)
    assert not isinstance(out, Err), out
    raw = bytes(out)
    assert (json.loads(raw) if raw and answer != "tickets" else raw.decode() or None) == answer


@pytest.mark.parametrize("route, payload, error", [
    ("/api/v1/platform-reports/abc", b'{"__method": "DELETE"}', "denied"),
    ("/nothing", None, "route-not-found"),
    ("/ticket/list", None, "route-not-found"),
])
def test_routes_file_errors_are_proxy_errors(tmp_path, route, payload, error):
    ctx, _ = routes_ctx(tmp_path, ROUTES)
    out = ui_proxy.call_route(ctx, route, payload)
    assert isinstance(out, Err) and out.payload == error


def test_routes_file_is_read_again_when_it_changes(tmp_path):
    ctx, path = routes_ctx(tmp_path, {"/a": {"body": "one"}})
    assert bytes(ui_proxy.call_route(ctx, "/a", None)) == b"one"
    path.write_text(json.dumps({"/a": {"body": "two, longer"}}))
    assert bytes(ui_proxy.call_route(ctx, "/a", None)) == b"two, longer"


@pytest.mark.parametrize("doc, named", [
    ("{nope", "not valid JSON"),
    ("[]", "must be a JSON object"),
    ({"TRACE /x": {}}, "'TRACE /x'"),
    ({"x": {}}, "'x'"),
    ({"/x": {"status": 99}}, "status must be"),
    ({"/x": {"json": 1, "body": "b"}}, "the value must be"),
    ({"/x": {"body": 5}}, "body must be text"),
])
def test_a_bad_routes_file_is_reported_by_entry(tmp_path, caplog, doc, named):
    ctx, _ = routes_ctx(tmp_path, doc)
    assert ui_proxy.call_route(ctx, "/x", None).payload == "internal"
    assert any(named in r.getMessage() and "UI_PROXY_ROUTES_FILE" in r.getMessage() for r in caplog.records)


def test_routes_file_only_without_a_base_and_only_standalone(tmp_path, backend):
    ctx, _ = routes_ctx(tmp_path, ROUTES, attached=True)
    assert ui_proxy.call_route(ctx, "/api/v1/platform-reports", None).payload == "route-not-found"
    ctx, _ = routes_ctx(tmp_path, ROUTES, base=backend.url)  # UI_PROXY_BASE_URL wins
    assert ui_proxy.call_route(ctx, "/x", None) == b"raw:/e/x"
