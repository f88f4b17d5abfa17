"""Guests built the way Alga's own samples are (esbuild + jco 1.15.4 / componentize-js 0.19.3, the
published @alga-psa/extension-runtime 0.3.0), installed with the installer and called through the
standalone gateway: one against the runner's WIT, one against an older 7-interface sample WIT.
They also drive standalone invoicing and the ui-proxy routes file from real components.

Each component compiles once per test run (the session-shared cache)."""
import json

import pytest
from helpers import GUESTS, base_config
from standalone_helpers import install, write_extension

from app import service_of as svc
from standalone import seed as seeds

pytestmark = pytest.mark.slow

ENDPOINTS = [{"method": m, "path": p, "handler": "dist/main"} for m, p in (
    ("GET", "/context"), ("GET", "/user"), ("GET", "/user-v2"), ("POST", "/storage"), ("POST", "/proxy/:a"),
    ("POST", "/proxy/:a/:b"),
    ("POST", "/invoice"), ("GET", "/services"), ("GET", "/nothing"))]
CAPS = ["cap:storage.kv", "cap:ui.proxy", "cap:invoice.manual.create", "cap:service.read"]
CLIENT = "1f0c3a52-8f7e-4d21-9b3a-6c1d2e3f4a5b"
SERVICE = "3b2c1d0e-9f8a-4b7c-8d6e-5f4a3b2c1d0e"
ROUTES = {"GET /api/v1/platform-reports": {"json": {"data": [{"report_id": "r-1"}]}},
          "POST /tickets/list": {"json": {"tickets": [{"id": 7}]}},
          "/forbidden": {"status": 403, "json": {}}}


@pytest.fixture(scope="module")
def app(shared_dirs, tmp_path_factory):
    from app import create_app

    work = tmp_path_factory.mktemp("legacy")
    (work / "routes.json").write_text(json.dumps(ROUTES))
    app = create_app({**base_config(shared_dirs, work), "ui_proxy_routes_file": str(work / "routes.json")})
    app.testing = True
    registry = svc(app).standalone.registry
    for part in seeds.parse({"clients": [{"clientId": CLIENT, "clientName": "Acme"}],
                             "services": [{"serviceId": SERVICE, "serviceName": "Support", "itemKind": "service",
                                           "billingMethod": "hourly", "defaultRate": 9500, "taxRate": 10}]},
                            registry.default_tenant):
        seeds.write(registry, part)
    yield app
    svc(app).lifecycle.stop()


@pytest.fixture(scope="module", params=["legacy", "legacy-old-wit"])
def guest(request, app, tmp_path_factory):
    """(client, the install) for each legacy component."""
    folder = write_extension(tmp_path_factory.mktemp(request.param) / "ext", name=f"com.tests.{request.param}",
                             wasm=GUESTS / f"{request.param}.wasm", endpoints=ENDPOINTS, capabilities=CAPS)
    result = install(app, folder)
    assert result.warnings == []  # it compiled
    return app.test_client(), result.install, request.param


def api(guest, method, path, body=None):
    client, installed, _ = guest
    r = client.open(f"/api/ext/{installed.registry_id}{path}", method=method,
                    data=None if body is None else json.dumps(body))
    return r.status_code, r.get_json()


def test_context_user_and_storage(guest):
    _, installed, _ = guest
    status, body = api(guest, "GET", "/context")
    assert status == 200 and body["context"]["tenantId"] == installed.tenant_id
    assert body["context"]["installId"] == installed.id
    status, body = api(guest, "GET", "/user")
    assert status == 200 and body["user"]["userId"] == "dev-user" and "clientId" not in body["user"]
    assert api(guest, "POST", "/storage", {"n": 1}) == (200, {"stored": True, "value": {"n": 1}})
    assert api(guest, "GET", "/nothing")[0] == 404


def test_ui_proxy_from_the_routes_file(guest):
    assert api(guest, "POST", "/proxy/tickets/list", {"limit": 5}) == (200, {"reply": {"tickets": [{"id": 7}]}})
    assert api(guest, "POST", "/proxy/forbidden", {}) == (502, {"error": "denied"})


def test_newer_interfaces_only_in_the_full_wit(guest):
    _, _, name = guest
    status, body = api(guest, "POST", "/invoice", {"clientId": CLIENT, "items": [
        {"serviceId": SERVICE, "quantity": 2, "description": "Support", "rate": 9500}]})
    if name == "legacy-old-wit":  # its world has no invoicing, services or user-v2 import
        assert status == 404 and api(guest, "GET", "/services")[0] == 404
        return
    assert status == 200
    result = body["result"]
    assert (result["success"], result["subtotal"], result["tax"], result["total"]) == (True, 19000, 1900, 20900)
    assert result["invoiceNumber"].startswith("INV-") and result["status"] == "draft"
    status, body = api(guest, "POST", "/invoice", {"clientId": "nope", "items": []})
    assert body["result"]["success"] is False
    assert set(json.loads(body["result"]["fieldErrors"])) == {"clientId", "items"}
    status, body = api(guest, "GET", "/services")
    assert status == 200 and body["services"]["items"][0]["serviceName"] == "Support"
    assert api(guest, "GET", "/user-v2")[1]["user"]["additionalFields"] == []
