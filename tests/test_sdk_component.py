"""The real SDK component (TypeScript + @alga-psa/extension-runtime, built with jco):
reference scenarios 13-17 and the executor's limits on a 13 MB StarlingMonkey guest.

Compiling it takes ~4 s; the session-shared cache root means once per test run.
"""
import base64
import json

import pytest
from helpers import decoded_body, execute_body, post_execute, publish

from app import service_of as svc

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sdk(module_app, sdk_wasm):
    store = svc(module_app).settings.bundles.bundle_store_base
    digest = publish(store, "tenant-ok", "ext-ok", {"dist/main.wasm": sdk_wasm})
    return {"hash": digest, "client": module_app.test_client()}


def run(sdk, **kw):
    kw.setdefault("tenant", "tenant-ok")
    kw.setdefault("extension", "ext-ok")
    r = post_execute(sdk["client"], execute_body(sdk["hash"], **kw), tenant="tenant-ok", extension="ext-ok")
    assert r.status_code == 200
    return r.get_json()


def envelope(secrets: dict) -> dict:
    return {"ciphertext_b64": base64.b64encode(json.dumps(secrets).encode()).decode(), "version": "v1"}


def test_scenario_13_14_dynamic_echo(sdk):
    payload = b'{"hello":"runner"}'
    out = run(sdk, method="POST", http={"path": "/dynamic/echo", "query": {"foo": "bar"}}, body=payload,
              providers=["cap:context.read", "cap:log.emit"])
    assert out["status"] == 200 and out["error"] is None
    assert out["headers"]["content-type"] == "application/json"
    assert out["headers"]["x-generated-by"] == "js-component"
    body = decoded_body(out)
    assert body["ok"] is True and body["tenantId"] == "tenant-ok" and body["extensionId"] == "ext-ok"
    assert body["method"] == "POST" and body["path"] == "/dynamic/echo?foo=bar"
    assert bytes(body["echo"]) == payload


def test_scenario_15_secrets_capability(sdk):
    out = run(sdk, path="/dynamic/secrets", providers=["cap:secrets.get"],
              secret_envelope=envelope({"ALGA_API_KEY": "sk_live_secret", "OTHER_TOKEN": "x"}))
    body = decoded_body(out)
    assert body["secrets"]["value"] == "sk_live_secret" and body["secrets"]["error"] is None
    assert set(body["secrets"]["keys"]) == {"ALGA_API_KEY", "OTHER_TOKEN"}


def test_scenario_16_secrets_denied(sdk):
    out = run(sdk, path="/dynamic/secrets", secret_envelope=envelope({"ALGA_API_KEY": "sk_live_secret"}))
    body = decoded_body(out)
    assert body["ok"] is False and "denied" in body["secrets"]["error"] and body["secrets"]["keys"] == []
    assert "sk_live_secret" not in json.dumps(out)


def test_scenario_17_ui_proxy_denied(sdk):
    body = decoded_body(run(sdk, path="/dynamic/ui-proxy"))
    assert body["ok"] is False and "denied" in body["proxy"]["error"]


def test_secret_envelope_change_is_seen(sdk):
    """Reference scenarios 2-3 through a real guest: the cache is keyed by the ciphertext."""
    first = decoded_body(run(sdk, path="/dynamic/secrets", providers=["cap:secrets.get"],
                             secret_envelope=envelope({"ALGA_API_KEY": "one"})))
    second = decoded_body(run(sdk, path="/dynamic/secrets", providers=["cap:secrets.get"],
                              secret_envelope={**envelope({"ALGA_API_KEY": "two"}), "version": "v2"}))
    assert (first["secrets"]["value"], second["secrets"]["value"]) == ("one", "two")


def test_guest_status_and_headers_pass_through(sdk):
    out = run(sdk, path="/status", http={"query": {"code": "418"}})
    assert out["status"] == 418 and out["headers"]["x-ext-test"] == "yes"


def test_timeout_on_a_js_loop(sdk):
    out = run(sdk, path="/loop", limits={"timeout_ms": 300})
    assert out["error"].startswith("execute_failed: timeout")
    assert run(sdk, path="/echo", body=b"after")["status"] == 200


def test_memory_limit_on_a_js_guest(sdk):
    out = run(sdk, path="/grow", http={"query": {"mb": "200"}}, limits={"memory_mb": 64, "timeout_ms": 10000})
    # SpiderMonkey turns the refused memory.grow into a catchable out-of-memory error
    assert out["status"] == 500 and "out of memory" in decoded_body(out)["error"]
    assert run(sdk, path="/grow", http={"query": {"mb": "8"}}, limits={"memory_mb": 128})["status"] == 200


def test_response_body_over_the_engine_limit(sdk):
    out = run(sdk, path="/big", http={"query": {"bytes": str(3 << 20)}})
    assert out["error"] == "execute_failed: response body too large"
    out = run(sdk, path="/big", http={"query": {"bytes": str(2 << 20)}})
    assert out["status"] == 200 and len(base64.b64decode(out["body_b64"])) == 2 << 20


def test_large_request_body_round_trip(sdk):
    data = bytes(range(256)) * 4096  # 1 MiB
    out = run(sdk, path="/echo", body=data)
    assert base64.b64decode(out["body_b64"]) == data


def test_guest_logs_reach_the_debug_stream_with_context(module_app, sdk):
    run(sdk, path="/log", http={"query": {"msg": "hello-debug"}})
    events = svc(module_app).executor.debug.recent("tenant-ok", "ext-ok")
    mine = [e for e in events if "hello-debug" in e["message"]]
    assert [e["level"] for e in mine] == ["info", "warn", "error"]
    assert all(e["tenant"] == "tenant-ok" and e["install"] == "install-1" for e in mine)
