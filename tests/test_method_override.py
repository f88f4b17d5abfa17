"""The ext-proxy ``__method`` override: the cases of Alga's handler.ts, then through the gateway."""
from __future__ import annotations

import base64
import json

import pytest
from standalone_helpers import install, sdk_extension

from app import service_of as svc
from standalone import method_override


@pytest.mark.parametrize("method, query, body, expected", [
    # not a POST: nothing changes
    ("PUT", {"__method": "DELETE"}, b'{"__method":"GET"}', ("PUT", {"__method": "DELETE"}, b'{"__method":"GET"}')),
    ("GET", {"__method": "POST"}, None, ("GET", {"__method": "POST"}, None)),
    # the query wins over the body; a valid body field is removed either way
    ("POST", {"__method": "DELETE", "x": "1"}, b'{"__method":"PUT","force":true}',
     ("DELETE", {"x": "1"}, b'{"force":true}')),
    ("POST", {"__method": "patch"}, b"raw bytes", ("PATCH", {}, b"raw bytes")),
    # an effective GET drops the body
    ("POST", {}, b'{"__method":"GET"}', ("GET", {}, None)),
    ("POST", {"__method": "GET"}, b'{"a":1}', ("GET", {}, None)),
    # nothing left after removing the field: no body
    ("POST", {}, b'{"__method":"DELETE"}', ("DELETE", {}, None)),
    # re-serialised compact, key order and non-ASCII kept
    ("POST", {}, '{ "b": 2, "__method": "put", "a": "é" }'.encode(), ("PUT", {}, '{"b":2,"a":"é"}'.encode())),
    # invalid overrides change nothing (an invalid query value stays in the query)
    ("POST", {"__method": "TRACE"}, b'{"__method":"HEAD","a":1}',
     ("POST", {"__method": "TRACE"}, b'{"__method":"HEAD","a":1}')),
    ("POST", {}, b'{"__method":5}', ("POST", {}, b'{"__method":5}')),
    # not a JSON object: the body is never looked into
    ("POST", {}, b'["__method","GET"]', ("POST", {}, b'["__method","GET"]')),
    ("POST", {}, b'{"__method":"GET", "n": NaN}', ("POST", {}, b'{"__method":"GET", "n": NaN}')),
    ("POST", {}, b"\xff\xfe", ("POST", {}, b"\xff\xfe")),
    ("POST", {}, b"", ("POST", {}, b"")),
    ("POST", {}, None, ("POST", {}, None)),
])
def test_override_cases(method, query, body, expected):
    assert method_override.apply(method, query, body) == expected


@pytest.fixture(scope="module")
def sdk(module_app, tmp_path_factory):
    return install(module_app, sdk_extension(tmp_path_factory.mktemp("ext") / "sdk")).install


@pytest.mark.slow
def test_only_ext_proxy_overrides(module_app, sdk, monkeypatch):
    seen = []
    executor = svc(module_app).executor
    real = executor.execute
    monkeypatch.setattr(executor, "execute", lambda headers, req: seen.append((headers, req)) or real(headers, req))
    client = module_app.test_client()
    r = client.post(f"/api/ext-proxy/{sdk.registry_id}/dynamic/echo?__method=GET&x=1", data=b'{"a":1}')
    assert r.status_code == 200, r.get_data(as_text=True)
    headers, req = seen[-1]
    assert (req.http.method, req.http.query, req.http.body_b64) == ("GET", {"x": "1"}, None)
    assert "x-idempotency-key" not in headers  # the effective method decides
    assert r.get_json()["method"] == "GET"
    # the body override: the guest gets the rest of the JSON
    r = client.post(f"/api/ext-proxy/{sdk.registry_id}/dynamic/echo", data=b'{"__method":"POST","k":"v"}')
    assert bytes(r.get_json()["echo"]) == b'{"k":"v"}'
    # the main gateway has no override (Alga's neither): POST stays POST with its query and body
    r = client.post(f"/api/ext/{sdk.registry_id}/dynamic/echo?__method=GET", data=b'{"a":1}')
    _, req = seen[-1]
    assert req.http.method == "POST" and req.http.query == {"__method": "GET"}
    assert base64.b64decode(req.http.body_b64) == b'{"a":1}' and json.loads(bytes(r.get_json()["echo"])) == {"a": 1}
    # an override to a method the manifest does not declare is refused like that method
    r = client.post(f"/api/ext-proxy/{sdk.registry_id}/dynamic/echo?__method=DELETE")
    assert r.status_code == 404 and "DELETE /dynamic/echo" in r.get_json()["message"]
