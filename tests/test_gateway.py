"""The standalone gateways /api/ext and /api/ext-proxy: resolution, endpoint enforcement, the request each
builds and how each answers (as Alga's two gateways do), and tenant isolation. Drives the real executor
with the SDK test guest."""
import base64
import json

import pytest
import wasmtime
from standalone_helpers import install, sdk_extension, write_extension

from app import service_of as svc
from runner.pool import RunnerBusy
from standalone import gateway, method_override
from standalone import seed as seeds
from standalone.gateway import DEV_USER, build_request, match_endpoint

pytestmark = pytest.mark.slow
TENANT_B = "tenant-b"


@pytest.fixture(scope="module")
def app(module_app, tmp_path_factory):
    svc(module_app).standalone.registry.create_tenant(TENANT_B, "Tenant B")
    return module_app


@pytest.fixture(scope="module")
def sdk(app, tmp_path_factory):
    return install(app, sdk_extension(tmp_path_factory.mktemp("ext") / "sdk")).install


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


def call(client, sdk, iface, fn, *args, **kw):
    r = client.post(f"/api/ext/{sdk.registry_id}/call", json={"iface": iface, "fn": fn, "args": list(args)}, **kw)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def test_main_gateway_answers_with_the_guest_status_and_body_and_the_runner_headers(client, sdk):
    r = client.get("/api/ext/com.tests.sdk/status?code=201")
    assert r.status_code == 201 and r.get_json() == {"status": 201}
    assert dict(r.headers) == {"content-type": "application/json", "cache-control": "no-store",
                               "Content-Length": str(len(r.data))}  # the guest's x-ext-test never passes here


def test_ext_proxy_answers_with_the_guest_headers_in_its_allowlist(client, sdk):
    r = client.get(f"/api/ext-proxy/{sdk.registry_id}/status?code=202")
    assert r.status_code == 202 and r.get_json() == {"status": 202}
    assert r.headers["content-type"] == "application/json" and "x-ext-test" not in r.headers
    assert "cache-control" not in r.headers  # the guest sent none, and Alga adds none


def test_request_reaches_the_guest_as_the_alga_gateway_builds_it(client, sdk, app):
    r = client.post(f"/api/ext/{sdk.registry_id}/dynamic/echo?a=1&b=x%20y", data=b"hi")
    assert r.status_code == 200
    assert "x-generated-by" not in r.headers  # only content-type, cache-control, etag and x-ext-* pass
    body = r.get_json()
    assert (body["method"], body["path"]) == ("POST", "/dynamic/echo?a=1&b=x+y")
    assert (body["tenantId"], body["extensionId"], body["echo"]) == (
        svc(app).settings.registry.default_tenant, sdk.registry_id, [104, 105])


@pytest.mark.parametrize("query, body, method, left_query, left_body", [
    ({"__method": "delete", "x": "1"}, b'{"__method":"PUT","force":true}', "DELETE", {"x": "1"}, b'{"force":true}'),
    ({}, b'{"__method":"GET"}', "GET", {}, None),
    ({}, b'{"__method":"put","a":[1,2]}', "PUT", {}, b'{"a":[1,2]}'),
    ({}, b'{"__method":"PUT"}', "PUT", {}, None),
    ({"__method": "TRACE"}, b'{"__method":"CONNECT","a":1}', "POST", {"__method": "TRACE"},
     b'{"__method":"CONNECT","a":1}'),
    ({}, b"not json", "POST", {}, b"not json"),
    ({"__method": "GET"}, b"payload", "GET", {}, None),
    ({}, b"", "POST", {}, b""),
])
def test_method_override(query, body, method, left_query, left_body):
    assert method_override.apply("POST", query, body) == (method, left_query, left_body)


def test_ext_proxy_method_override_reaches_the_guest(client, sdk, app, monkeypatch):
    seen = spy(monkeypatch)
    r = client.post(f"/api/ext-proxy/{sdk.registry_id}/dynamic/echo?__method=post&q=1",
                    data=b'{"__method":"GET","v":2}')
    assert r.status_code == 200
    http = seen[-1][1]["http"]
    assert (http["method"], http["query"], http["body_b64"]) == ("POST", {"q": "1"}, base64.b64encode(b'{"v":2}').decode())
    r = client.post(f"/api/ext-proxy/{sdk.registry_id}/status", data=b'{"__method":"GET"}')
    assert r.status_code == 200 and seen[-1][1]["http"]["method"] == "GET" and "body_b64" not in seen[-1][1]["http"]


def test_ext_proxy_request_has_what_alga_adds(client, sdk, app, monkeypatch):
    seen = spy(monkeypatch)
    client.post(f"/api/ext-proxy/{sdk.registry_id}/dynamic/echo", data=b"",
                headers={"x-custom": "dropped", "accept": "*/*", "x-request-id": "rid-9"})
    routing, doc = seen[-1]
    assert "x-idempotency-key" not in routing  # ext-proxy sends none to the runner
    assert (doc["http"]["body_b64"], doc["http"]["url"], doc["endpoint"]) == ("", "/dynamic/echo",
                                                                              "ui-proxy:/dynamic/echo")
    forwarded = doc["http"]["headers"]
    assert set(forwarded) == {"accept", "user-agent", "x-request-id", "x-idempotency-key", "x-alga-tenant",
                              "x-alga-extension"}
    assert forwarded["x-request-id"] == "rid-9" and forwarded["x-idempotency-key"] != "rid-9"
    assert doc["user"] == {**DEV_USER, "additional_fields": {}}


def spy(monkeypatch) -> list:
    """(routing headers, JSON body) of each /v1/execute call the gateway makes."""
    seen = []
    real = gateway.execute
    monkeypatch.setattr(gateway, "execute", lambda executor, routing, doc, *a: seen.append((routing, doc))
                        or real(executor, routing, doc, *a))
    return seen


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("prefix", ["/api/ext", "/api/ext-proxy"])
def test_cross_site_browser_requests_are_refused(client, sdk, prefix, method):
    r = client.open(f"{prefix}/{sdk.registry_id}/status?code=201", method=method,
                    headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403 and r.get_json()["error"] == "cross_site_request"
    assert r.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("site", ["same-origin", "same-site", "none"])
def test_same_site_browser_requests_pass(client, sdk, site):
    r = client.get(f"/api/ext/{sdk.registry_id}/status?code=201", headers={"Sec-Fetch-Site": site})
    assert r.status_code == 201

@pytest.mark.parametrize("method, path", [
    ("GET", "/nope"), ("DELETE", "/status"), ("GET", "/status/extra"), ("GET", "/dynamic/a/b"), ("GET", ""),
    ("POST", "/status"),
])
def test_endpoints_are_enforced(client, sdk, method, path):
    r = client.open(f"/api/ext/{sdk.registry_id}{path}", method=method)
    assert r.status_code == 404 and r.get_json()["error"] == "endpoint_not_found"
    assert r.headers["Cache-Control"] == "no-store"


def test_param_segment_matches_any_one_segment(client, sdk):
    assert client.get(f"/api/ext/{sdk.registry_id}/dynamic/anything").get_json()["path"] == "/dynamic/anything"


def test_match_endpoint():
    endpoints = [{"method": "GET", "path": "/items/:id", "handler": "h"}, {"method": "POST", "path": "/", "handler": "h"},
                 {"method": "HEAD", "path": "api/status/", "handler": "h"},
                 {"method": "OPTIONS", "path": "/opt", "handler": "h"}]
    assert match_endpoint(endpoints, "GET", "/items/7") == endpoints[0]
    assert match_endpoint(endpoints, "GET", "/items/7/") == endpoints[0]
    assert match_endpoint(endpoints, "POST", "/") == endpoints[1]
    assert match_endpoint(endpoints, "POST", "") == endpoints[1]
    assert match_endpoint(endpoints, "GET", "/api/status") == endpoints[2]  # a HEAD endpoint serves GET
    for method, path in (("GET", "/items"), ("PUT", "/items/7"), ("GET", "/items/7/x"), ("GET", "/items//"),
                         ("OPTIONS", "/opt"), ("HEAD", "/api/status"), ("GET", "/API/status")):
        assert match_endpoint(endpoints, method, path) is None, (method, path)


def test_head_is_served_as_get(client, sdk):
    r = client.head(f"/api/ext/{sdk.registry_id}/status?code=200")
    assert r.status_code == 200 and r.data == b""


def test_unknown_and_disabled_extensions(client, sdk, app):
    r = client.get("/api/ext/com.tests.nothing/status")
    assert r.status_code == 404 and r.get_json()["error"] == "extension_not_available"
    registry = svc(app).standalone.registry
    registry.set_enabled(sdk.id, False)
    try:
        r = client.get("/api/ext/com.tests.sdk/status")
        assert r.status_code == 403 and r.get_json()["error"] == "extension_disabled"
    finally:
        registry.set_enabled(sdk.id, True)


def test_tenant_b_reaches_neither_the_install_nor_the_storage_of_tenant_a(client, sdk, app, tmp_path):
    for where in ({"headers": {"x-alga-tenant": TENANT_B}}, {"query_string": {"tenant": TENANT_B}}):
        r = client.get(f"/api/ext/{sdk.registry_id}/status", **where)
        assert r.status_code == 404 and r.get_json()["error"] == "extension_not_available"
    value = {"$bytes": base64.b64encode(b"secret-of-a").decode()}
    assert "ok" in call(client, sdk, "storage", "put", {"namespace": "ns", "key": "k", "value": value})
    assert call(client, sdk, "storage", "get", "ns", "k")["ok"]["value"] == value

    b = install(app, sdk_extension(tmp_path / "sdk"), TENANT_B).install
    assert b.id != sdk.id and b.registry_id == sdk.registry_id
    headers = {"x-alga-tenant": TENANT_B}
    assert call(client, b, "storage", "get", "ns", "k", headers=headers).get("ok") is None
    assert call(client, b, "storage", "list-entries", "ns", None, headers=headers)["ok"] == []
    echoed = client.get(f"/api/ext/{sdk.registry_id}/dynamic/who", headers=headers).get_json()
    assert echoed["tenantId"] == TENANT_B


def test_secrets_reach_the_guest(client, sdk, app):
    svc(app).standalone.secrets.set(sdk, "ALGA_API_KEY", "s3cret")
    try:
        body = client.get(f"/api/ext/{sdk.registry_id}/dynamic/secrets").get_json()
        assert body["secrets"] == {"value": "s3cret", "keys": ["ALGA_API_KEY"], "error": None}
    finally:
        svc(app).standalone.secrets.remove(sdk, "ALGA_API_KEY")


def test_the_dev_user_reaches_the_guest(client, sdk):
    user = call(client, sdk, "user", "get-user")["ok"]
    assert (user["userId"], user["userEmail"], user["userType"], user["clientName"]) == (
        "dev-user", "dev@localhost", "internal", "Standalone")


def test_build_request(sdk, app):
    registry = svc(app).standalone.registry
    registry.update_config(sdk, {"region": "eu"})
    sdk = registry.install_by_id(sdk.id)
    registry.update_config(sdk, {}, removed=("region",))
    routing, doc = build_request(
        sdk, method="POST", path="/dynamic/echo", query={"q": "1"}, headers={"accept": "*/*"}, body=b"x",
        request_id="req-1", idempotency_key="req-1", timeout_ms=1234, secret_envelope={"ciphertext_b64": "e30="},
        user=DEV_USER)
    assert routing == {"x-request-id": "req-1", "x-alga-tenant": sdk.tenant_id, "x-alga-extension": sdk.registry_id,
                       "x-idempotency-key": "req-1"}
    assert doc["context"] == {"request_id": "req-1", "tenant_id": sdk.tenant_id, "extension_id": sdk.registry_id,
                              "install_id": sdk.id, "content_hash": sdk.content_hash, "version_id": sdk.version_id,
                              "config": {"region": "eu"}}
    assert doc["http"] == {"method": "POST", "path": "/dynamic/echo", "query": {"q": "1"},
                           "headers": {"accept": "*/*", "x-alga-tenant": sdk.tenant_id,
                                       "x-alga-extension": sdk.registry_id},
                           "body_b64": "eA=="}
    assert doc["limits"] == {"timeout_ms": 1234} and doc["user"] == DEV_USER
    assert doc["providers"] == ["cap:client.read", "cap:context.read", "cap:log.emit", "cap:scheduler.manage",
                                "cap:secrets.get", "cap:service.read", "cap:storage.kv", "cap:user.read"]
    assert doc["secret_envelope"] == {"ciphertext_b64": "e30="}


def test_forwarded_headers_and_idempotency(client, sdk, app, monkeypatch):
    seen = spy(monkeypatch)
    client.post(f"/api/ext/{sdk.registry_id}/dynamic/echo", data=b"{}", headers={
        "Authorization": "Bearer x", "Cookie": "a=b", "Connection": "keep-alive, x-hop", "x-hop": "1",
        "x-custom": "kept", "x-request-id": "rid-7"})
    client.get(f"/api/ext/{sdk.registry_id}/status")
    (post_routing, post), (get_routing, get) = seen
    assert post_routing["x-idempotency-key"] == "rid-7" and post["context"]["request_id"] == "rid-7"
    assert "x-idempotency-key" not in get_routing and "body_b64" not in get["http"]
    assert post["user"]["company_name"] == DEV_USER["client_name"] and "client_name" not in post["user"]
    assert set(post["http"]["headers"]) == {"user-agent", "x-request-id", "x-alga-tenant", "x-alga-extension"}
    assert "endpoint" not in post and "url" not in post["http"]


@pytest.mark.parametrize("prefix, status", [("/api/ext", 502), ("/api/ext-proxy", 503)])
def test_runner_busy_is_bad_gateway(client, sdk, app, monkeypatch, prefix, status):
    """Alga's main gateway turns any runner HTTP error into 502; ext-proxy repeats the runner's 503."""
    def busy(headers, req):
        raise RunnerBusy()

    monkeypatch.setattr(svc(app).executor, "execute", busy)
    r = client.get(f"{prefix}/{sdk.registry_id}/status", headers={"x-request-id": "rid-1"})
    assert r.status_code == status
    assert (r.get_json()["error"], r.get_json()["requestId"]) == ("bad_gateway", "rid-1")


@pytest.mark.parametrize("prefix", ["/api/ext", "/api/ext-proxy"])
@pytest.mark.parametrize("code", [100, 600])
def test_statuses_no_response_can_carry(client, sdk, prefix, code):
    r = client.get(f"{prefix}/{sdk.registry_id}/status?code={code}")
    expected = ("bad_gateway", 502) if prefix == "/api/ext" else ("access_policy_unavailable", 503)
    assert (r.get_json()["error"], r.status_code) == expected


def test_body_caps(client, sdk, app, monkeypatch):
    r = client.post(f"/api/ext/{sdk.registry_id}/dynamic/x", data=b"x" * (10 * 1024 * 1024 + 1))
    assert r.status_code == 413 and r.get_json()["error"] == "payload_too_large"
    gateway = app.view_functions["gateway.ext_proxy"].__self__
    monkeypatch.setattr(gateway, "max_request_bytes", 4096)
    r = client.post(f"/api/ext-proxy/{sdk.registry_id}/dynamic/echo", data=b"x" * 4096)
    assert r.status_code == 413 and r.get_json()["error"] == "bad_gateway"  # what the runner's 413 becomes


def test_runner_failures_as_alga_shows_them(make_app, mini_wasm, tmp_path):
    app = make_app(gateway_timeout_ms=300)
    endpoints = [{"method": "GET", "path": "/loop", "handler": "h"}, {"method": "POST", "path": "/echo", "handler": "h"}]
    mini = install(app, write_extension(tmp_path / "mini", name="com.tests.mini", wasm=mini_wasm,
                                        endpoints=endpoints)).install
    empty = install(app, write_extension(tmp_path / "empty", name="com.tests.empty", endpoints=endpoints,
                                         wasm=bytes(wasmtime.wat2wasm("(component)")))).install
    client = app.test_client()
    for prefix in ("/api/ext", "/api/ext-proxy"):
        r = client.get(f"{prefix}/{mini.registry_id}/loop")  # the gateway's own timeout
        assert r.status_code == 502 and r.get_json()["error"] == "bad_gateway", prefix
        r = client.get(f"{prefix}/{empty.registry_id}/loop")  # the runner's envelope: status 500, no body
        assert (r.status_code, r.data) == (500, b""), prefix
        assert r.headers["x-runner-error"].startswith("execute_failed"), prefix
    r = client.post(f"/api/ext/{mini.registry_id}/echo", data=b"raw")
    assert r.status_code == 200 and r.data == b"raw"
    assert r.headers["content-type"] == "application/json"  # the runner's, as Alga's main gateway shows it
    r = client.post(f"/api/ext-proxy/{mini.registry_id}/echo", data=b"")
    assert r.status_code == 200 and r.data == b"" and "content-type" not in r.headers
    assert json.loads(client.get("/api/ext/com.tests.mini/nope").data)["error"] == "endpoint_not_found"


def test_seeded_clients_and_services_reach_the_guest(client, sdk, app):
    doc = {"clients": [{"clientId": "c1", "clientName": "Acme", "billingEmail": "ap@acme.test"}],
           "services": [{"serviceId": "s1", "serviceName": "Support", "itemKind": "service",
                         "billingMethod": "hourly", "defaultRate": 95.0}]}
    for part in seeds.parse(doc, sdk.tenant_id):
        seeds.write(svc(app).standalone.registry, part)
    listed = call(client, sdk, "clients", "list-clients", {})["ok"]
    assert [c["clientName"] for c in listed["items"]] == ["Acme"]
    service = call(client, sdk, "services", "get-service", "s1")["ok"]
    assert (service["serviceName"], service["defaultRate"]) == ("Support", 95.0)
