"""The standalone gateway /api/ext/<extension>/<path>: resolution, endpoint enforcement, the request it
builds, how it answers, and tenant isolation. Drives the real executor with the SDK test guest."""
from app import service_of as svc
import base64
import json

import pytest

from standalone.gateway import DEV_USER, build_request, match_endpoint
from runner.pool import RunnerBusy
from standalone_helpers import install, sdk_extension, write_extension
from standalone import seed as seeds

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


def test_guest_status_headers_and_body(client, sdk):
    r = client.get("/api/ext/com.tests.sdk/status?code=201")
    assert r.status_code == 201 and r.get_json() == {"status": 201}
    assert r.headers["content-type"] == "application/json" and r.headers["x-ext-test"] == "yes"
    assert r.headers["cache-control"] == "no-store"


def test_request_reaches_the_guest_as_the_alga_gateway_builds_it(client, sdk, app):
    r = client.post(f"/api/ext/{sdk.registry_id}/dynamic/echo?a=1&b=x%20y", data=b"hi")
    assert r.status_code == 200
    assert "x-generated-by" not in r.headers  # only content-type, cache-control, etag and x-ext-* pass
    body = r.get_json()
    assert (body["method"], body["path"]) == ("POST", "/dynamic/echo?a=1&b=x+y")
    assert (body["tenantId"], body["extensionId"], body["echo"]) == (
        svc(app).settings.registry.default_tenant, sdk.registry_id, [104, 105])


def test_ext_proxy_route_is_the_same(client, sdk):
    r = client.get(f"/api/ext-proxy/{sdk.registry_id}/status?code=202")
    assert r.status_code == 202 and r.headers["x-ext-test"] == "yes"



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
    endpoints = [{"method": "GET", "path": "/items/:id", "handler": "h"}, {"method": "POST", "path": "/", "handler": "h"}]
    assert match_endpoint(endpoints, "GET", "/items/7") == endpoints[0]
    assert match_endpoint(endpoints, "GET", "/items/7/") == endpoints[0]
    assert match_endpoint(endpoints, "POST", "/") == endpoints[1]
    assert match_endpoint(endpoints, "GET", "/items") is None
    assert match_endpoint(endpoints, "PUT", "/items/7") is None


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
    seen = []
    executor = svc(app).executor
    real = executor.execute
    monkeypatch.setattr(executor, "execute", lambda headers, req: seen.append((headers, req)) or real(headers, req))
    client.post(f"/api/ext/{sdk.registry_id}/dynamic/echo", data=b"{}", headers={
        "Authorization": "Bearer x", "Cookie": "a=b", "Connection": "keep-alive, x-hop", "x-hop": "1",
        "x-custom": "kept", "x-request-id": "rid-7"})
    client.get(f"/api/ext/{sdk.registry_id}/status")
    (post_headers, post), (get_headers, get) = seen
    assert post_headers["x-idempotency-key"] == "rid-7" and post.context.request_id == "rid-7"
    assert "x-idempotency-key" not in get_headers and get.http.body_b64 is None
    forwarded = post.http.headers
    assert forwarded["x-custom"] == "kept" and forwarded["x-alga-tenant"] == sdk.tenant_id
    assert not {"authorization", "cookie", "connection", "x-hop", "content-length"} & set(forwarded)


def test_runner_busy_is_503(client, sdk, app, monkeypatch):
    def busy(headers, req):
        raise RunnerBusy()

    monkeypatch.setattr(svc(app).executor, "execute", busy)
    r = client.get(f"/api/ext/{sdk.registry_id}/status")
    assert r.status_code == 503 and r.get_json()["error"] == "runner_busy" and r.headers["Retry-After"] == "1"


def test_runner_failure_is_502_with_the_error_code(make_app, mini_wasm, tmp_path):
    app = make_app(default_timeout_ms=300)
    folder = write_extension(tmp_path / "mini", name="com.tests.mini", wasm=mini_wasm,
                             endpoints=[{"method": "GET", "path": "/loop", "handler": "h"},
                                        {"method": "POST", "path": "/echo", "handler": "h"}])
    mini = install(app, folder).install
    client = app.test_client()
    r = client.get(f"/api/ext/{mini.registry_id}/loop")
    assert r.status_code == 502
    body = r.get_json()
    assert (body["error"], body["code"]) == ("bad_gateway", "execute_failed")
    assert body["message"].startswith("execute_failed")
    r = client.post(f"/api/ext/{mini.registry_id}/echo", data=b"raw")
    assert r.status_code == 200 and r.data == b"raw"
    assert r.headers["content-type"] == "application/octet-stream"
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
