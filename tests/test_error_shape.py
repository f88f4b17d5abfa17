"""Every JSON error of every route has one shape: ``{"error": <code>, "message": <text>, ...}``,
the right status, a JSON content type and ``Cache-Control: no-store``.

Routes whose errors the reference fixes otherwise are listed in NOT_JSON with the reason; every
other route must appear in BAD_REQUESTS, so a new route cannot ship without an error test.
"""
import pytest
from helpers import execute_body

# Route rule -> requests that must fail, as (method, path, kwargs for the test client, expected status).
BAD_REQUESTS = {
    "/v1/execute": [
        ("POST", "/v1/execute", {"data": "{}", "content_type": "text/plain"}, 415),
        ("POST", "/v1/execute", {"data": "{not json", "content_type": "application/json"}, 400),
        ("POST", "/v1/execute", {"json": {"context": {}}}, 422),
        ("GET", "/v1/execute", {}, 405),
    ],
    "/healthz": [("POST", "/healthz", {}, 405)],
    "/livez": [("DELETE", "/livez", {}, 405)],
    "/readyz": [("PUT", "/readyz", {}, 405)],
    "/metrics": [("POST", "/metrics", {}, 405)],
    "/openapi.json": [("DELETE", "/openapi.json", {}, 405)],
    "/": [("POST", "/", {}, 405)],
    "/api/ext/<extension_id>/": [("GET", "/api/ext/nope/", {}, 404)],
    "/api/ext/<extension_id>/<path:path>": [
        ("GET", "/api/ext/nope/x", {}, 404),
        ("POST", "/api/ext/nope/x", {"headers": {"Sec-Fetch-Site": "cross-site"}}, 403),
    ],
    "/api/ext-proxy/<extension_id>/": [("GET", "/api/ext-proxy/nope/", {}, 404)],
    "/api/ext-proxy/<extension_id>/<path:path>": [("PUT", "/api/ext-proxy/nope/x", {}, 404)],
    # The publish API of Alga's CLI: off (403) without EXT_PUBLISH_API_KEY; tests/test_publish_api.py has the rest.
    "/api/ext-bundles/upload-proxy": [("POST", "/api/ext-bundles/upload-proxy", {}, 403),
                                      ("GET", "/api/ext-bundles/upload-proxy", {}, 405)],
    "/api/ext-bundles/finalize": [("POST", "/api/ext-bundles/finalize", {"json": {}}, 403)],
    "/api/v1/extensions/install": [("POST", "/api/v1/extensions/install", {}, 403)],
    "/api/v1/extensions/uninstall": [("PUT", "/api/v1/extensions/uninstall", {}, 405)],
    "/msp/extensions/<registry_id>/events": [("GET", "/msp/extensions/nope/events", {}, 404)],
    "/msp/theme.css": [("POST", "/msp/theme.css", {}, 405)],
    "/msp/static/<path:filename>": [("GET", "/msp/static/missing.js", {}, 404)],
}
UNROUTED = [("GET", "/no/such/route", {}, 404), ("POST", "/v1/execute", {"data": b"x" * 2000,
                                                                          "content_type": "application/json"}, 413)]
NOT_JSON = {
    "/ext-ui/<extension_id>/<content_hash>/<ui_tail:tail>": "reference §3.4: text/plain and {code} bodies",
    "/runner/ext-ui/<extension_id>/<content_hash>/<ui_tail:tail>": "the same route behind Alga's /runner prefix",
    "/warmup": "reference §1.5: axum's plain-text extractor errors",
    "/msp/extensions": "an HTML page for people",
    "/msp/extensions/<registry_id>/": "an HTML page for people (its 404 is a page too)",
}


@pytest.fixture(scope="module")
def client(shared_dirs, tmp_path_factory):
    from helpers import base_config

    from app import create_app, service_of

    app = create_app({**base_config(shared_dirs, tmp_path_factory.mktemp("shape")), "max_request_bytes": 1000})
    yield app.test_client()
    service_of(app).lifecycle.stop()


def test_every_route_is_covered(client):
    rules = {rule.rule for rule in client.application.url_map.iter_rules()}
    assert rules == set(BAD_REQUESTS) | set(NOT_JSON)


@pytest.mark.parametrize("method,path,kwargs,status",
                         [case for cases in BAD_REQUESTS.values() for case in cases] + UNROUTED)
def test_error_shape(client, method, path, kwargs, status):
    r = client.open(path, method=method, **kwargs)
    assert r.status_code == status
    assert r.mimetype == "application/json", r.data[:200]
    body = r.get_json()
    assert isinstance(body.get("error"), str) and body["error"]
    assert isinstance(body.get("message"), str)
    assert r.headers["Cache-Control"] == "no-store"
    if status == 405:
        assert r.headers["Allow"]


def test_execute_rejections_name_the_field(client):
    doc = execute_body("a" * 64)
    doc["http"]["headers"] = {"x": 1}
    body = client.post("/v1/execute", json=doc).get_json()
    assert body == {"error": "invalid_request", "message": "http.headers.x must be a string",
                    "field": "http.headers.x"}
