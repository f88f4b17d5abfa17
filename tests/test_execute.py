"""POST /v1/execute with the tiny WAT component: the error-code table, limits, the pool.

Real HTTP where it matters (a Gunicorn server in test_gunicorn.py); here the Flask
test client drives the real executor, worker processes and bundle cache.
"""
import base64
import concurrent.futures
import json
import os
import signal
import sys
import threading
import time

import pytest
from helpers import decoded_body, execute_body, post_execute, publish

from app import service_of as svc


@pytest.fixture(scope="module")
def mini_hash(module_app, mini_wasm):
    store = svc(module_app).settings.bundles.bundle_store_base
    return publish(store, "tenant-a", "ext-a", {"dist/main.wasm": mini_wasm, "manifest.json": b"{}"})


@pytest.fixture(scope="module")
def client(module_app):
    return module_app.test_client()


def run(client, content_hash, **kw):
    headers = kw.pop("headers", {})
    r = post_execute(client, execute_body(content_hash, **kw), **headers)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.headers["Cache-Control"] == "no-store"
    return r.get_json()


def test_success_envelope(client, mini_hash):
    out = run(client, mini_hash, path="/echo", body=b"hello")
    assert set(out) == {"status", "headers", "body_b64", "error"}
    assert out["status"] == 200 and out["error"] is None
    assert out["headers"]["x-url"] == "/echo"
    assert base64.b64decode(out["body_b64"]) == b"hello"


def test_a_large_body_crosses_to_the_worker_and_back(client, mini_hash):
    """Messages larger than one read and than the framing's one-piece send, both ways."""
    body = bytes(range(256)) * 4096  # 1 MiB
    out = run(client, mini_hash, path="/echo", body=body)
    assert out["status"] == 200 and base64.b64decode(out["body_b64"]) == body


def test_query_is_form_encoded_into_url(client, mini_hash):
    out = run(client, mini_hash, http={"path": "/dynamic/echo", "query": {"foo": "bar baz", "a": "&"}})
    assert out["headers"]["x-url"] == "/dynamic/echo?foo=bar+baz&a=%26"
    out = run(client, mini_hash, http={"path": "/p?x=1", "query": {"y": "2"}})
    assert out["headers"]["x-url"] == "/p?x=1&y=2"


def test_body_none_and_empty(client, mini_hash):
    assert run(client, mini_hash, path="/echo")["body_b64"] is None
    assert run(client, mini_hash, path="/echo", http={"body_b64": ""})["body_b64"] == ""
    assert run(client, mini_hash, path="/nobody", body=b"x")["body_b64"] is None


# The error-code table of reference §1.1, row by row, in its order.

def test_missing_routing_headers(client, mini_hash):
    r = client.post("/v1/execute", json=execute_body(mini_hash), headers={"x-alga-tenant": "tenant-a"})
    assert r.get_json() == {"status": 400, "headers": {}, "body_b64": None, "error": "missing_routing_headers"}
    r = post_execute(client, execute_body(mini_hash), extension="")
    assert r.get_json()["error"] == "missing_routing_headers"


def test_invalid_content_hash_never_builds_a_path(client):
    doc = execute_body("x")
    doc["context"]["content_hash"] = "sha256:../../etc"
    assert post_execute(client, doc).get_json() == {
        "status": 400, "headers": {}, "body_b64": None, "error": "invalid_content_hash"}


def test_engine_init_failed_when_store_unset(make_app, mini_hash):
    client = make_app(bundle_store_base="").test_client()
    out = post_execute(client, execute_body(mini_hash)).get_json()
    assert out["status"] == 500 and out["error"].startswith("engine_init_failed: ")


def test_bundle_fetch_failed_for_missing_bundle(client):
    out = run(client, "cd" * 32)
    assert out["status"] == 502 and out["error"].startswith("bundle_fetch_failed: ")


def test_bundle_without_main_wasm(module_app, client):
    store = svc(module_app).settings.bundles.bundle_store_base
    h = publish(store, "tenant-a", "ext-a", {"manifest.json": b"{}", "ui/index.html": b"<p>ui only</p>"})
    out = run(client, h)
    assert out["status"] == 502 and out["error"].startswith("bundle_fetch_failed: ")


def test_bundle_is_fetched_before_capabilities_are_checked(client, mini_hash):
    out = run(client, "ef" * 32, providers=["cap:nope"])
    assert out["error"].startswith("bundle_fetch_failed")
    out = run(client, mini_hash, providers=["cap:nope", " CAP:Storage.KV ", "cap:other"])
    assert out == {"status": 400, "headers": {}, "body_b64": None,
                   "error": "unknown_capabilities: cap:nope, cap:other"}


def test_secret_decrypt_failed(client, mini_hash):
    out = run(client, mini_hash, secret_envelope={"ciphertext_b64": "!!!not base64"})
    assert out == {"status": 500, "headers": {}, "body_b64": None, "error": "secret_decrypt_failed"}
    bad_json = base64.b64encode(b'{"k": 1}').decode()
    assert run(client, mini_hash, secret_envelope={"ciphertext_b64": bad_json})["error"] == "secret_decrypt_failed"


def test_execute_failed_for_bad_body_base64(client, mini_hash):
    out = run(client, mini_hash, http={"body_b64": "***"})
    assert out["status"] == 500 and out["error"].startswith("execute_failed: invalid body base64")


def test_secrets_granted_and_denied(client, mini_hash):
    envelope = {"ciphertext_b64": base64.b64encode(json.dumps({"api_key": "sk_live"}).encode()).decode()}
    out = run(client, mini_hash, path="/echo", secret_envelope=envelope, providers=["cap:secrets.get"])
    assert out["headers"]["x-secret"] == "sk_live"
    out = run(client, mini_hash, path="/echo", secret_envelope=envelope)
    assert out["headers"]["x-secret-error"] == "denied"
    out = run(client, mini_hash, path="/echo", providers=["cap:secrets.get"])
    assert out["headers"]["x-secret-error"] == "missing"  # no envelope


# Limits and isolation

def test_timeout_stops_the_loop_near_its_limit_and_the_worker_serves_on(client, mini_hash):
    started = time.monotonic()
    out = run(client, mini_hash, path="/loop", limits={"timeout_ms": 300})
    elapsed = time.monotonic() - started
    assert out["status"] == 500 and out["error"].startswith("execute_failed: timeout")
    assert 0.25 < elapsed < 2.0
    assert run(client, mini_hash, path="/echo")["status"] == 200


def test_default_timeout_applies_when_absent(make_app, mini_hash):
    client = make_app(default_timeout_ms=200).test_client()
    doc = execute_body(mini_hash, path="/loop")
    del doc["limits"]
    out = post_execute(client, doc).get_json()
    assert out["error"] == "execute_failed: timeout: the handler ran longer than 200 ms"  # not the 30 s default


def test_memory_limit(client, mini_hash):
    assert run(client, mini_hash, path="/grow", limits={"memory_mb": 64})["status"] == 200
    assert run(client, mini_hash, path="/grow", limits={"memory_mb": 5})["status"] == 507


def test_fuel_is_honoured(client, mini_hash):
    out = run(client, mini_hash, path="/loop", limits={"fuel": 100000, "timeout_ms": 5000})
    assert out["error"].startswith("execute_failed: fuel exhausted")
    assert run(client, mini_hash, path="/echo", limits={"fuel": 10_000_000})["status"] == 200


def test_a_trap_never_poisons_later_requests(client, mini_hash):
    for _ in range(3):
        assert run(client, mini_hash, path="/loop", limits={"timeout_ms": 50})["error"]
        assert run(client, mini_hash, path="/echo", body=b"ok")["body_b64"] == base64.b64encode(b"ok").decode()


def test_many_parallel_requests_across_workers(module_app, client, mini_hash):
    def one(i):
        c = module_app.test_client()
        return run(c, mini_hash, path=f"/echo/{i}", body=str(i).encode())

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(64)))
    assert [base64.b64decode(r["body_b64"]) for r in results] == [str(i).encode() for i in range(64)]
    assert svc(module_app).executor.pool.alive_workers() == 2


def test_idempotent_replay_is_scoped(client, mini_hash):
    first = run(client, mini_hash, path="/echo", body=b"one", headers={"x-idempotency-key": "k1"})
    again = run(client, mini_hash, path="/echo", body=b"two", headers={"x-idempotency-key": "k1"})
    assert again == first
    other_tenant = run(client, mini_hash, path="/echo", body=b"two",
                       headers={"x-idempotency-key": "k1", "x-alga-extension": "ext-b"})
    # same content hash, so the cached bundle runs, but ext-a's stored reply is not replayed
    assert base64.b64decode(other_tenant["body_b64"]) == b"two"


def test_failures_are_not_stored_for_replay(client, mini_hash):
    run(client, mini_hash, path="/loop", limits={"timeout_ms": 20}, headers={"x-idempotency-key": "k2"})
    assert run(client, mini_hash, path="/echo", headers={"x-idempotency-key": "k2"})["status"] == 200


def test_worker_killed_mid_request_is_replaced(make_app, mini_hash):
    app = make_app(workers=1)
    client = app.test_client()
    assert run(client, mini_hash, path="/echo")["status"] == 200
    pool = svc(app).executor.pool
    [pid] = pool.worker_pids()
    threading.Timer(0.3, os.kill, (pid, signal.SIGKILL)).start()
    out = run(client, mini_hash, path="/loop", limits={"timeout_ms": 5000})
    assert out["status"] == 500 and "signal 9" in out["error"]
    assert run(client, mini_hash, path="/echo")["status"] == 200
    assert pool.worker_pids() != [pid]


def test_hung_worker_is_replaced_after_the_hard_deadline(make_app, mini_hash):
    app = make_app(workers=1, hard_deadline_grace_ms=300)
    client = app.test_client()
    pool = svc(app).executor.pool
    run(client, mini_hash, path="/echo")
    [pid] = pool.worker_pids()
    os.kill(pid, signal.SIGSTOP)  # stands in for a host call stuck forever
    started = time.monotonic()
    out = run(client, mini_hash, path="/echo", limits={"timeout_ms": 200})
    assert "hard deadline" in out["error"] and time.monotonic() - started < 3
    assert run(client, mini_hash, path="/echo")["status"] == 200


def test_runner_busy_when_the_queue_is_full(make_app, mini_hash):
    app = make_app(workers=1, queue_size=1, queue_timeout_ms=5000)
    run(app.test_client(), mini_hash, path="/echo")  # start and warm the worker
    slow = execute_body(mini_hash, path="/loop", limits={"timeout_ms": 800})
    with concurrent.futures.ThreadPoolExecutor(3) as ex:
        futures = [ex.submit(lambda: post_execute(app.test_client(), slow)) for _ in range(3)]
        answers = [f.result() for f in futures]
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200, 200, 503]
    busy = next(r for r in answers if r.status_code == 503)
    assert busy.get_json()["error"] == "runner_busy" and busy.get_json()["message"] and busy.headers["Retry-After"]


def test_request_too_large_is_413_json(make_app, mini_hash):
    client = make_app(max_request_bytes=1000).test_client()
    r = post_execute(client, execute_body(mini_hash, body=b"x" * 2000))
    assert r.status_code == 413 and r.is_json


def test_inbound_token_when_configured(make_app, mini_hash):
    client = make_app(inbound_token="s3cret").test_client()
    doc = execute_body(mini_hash, path="/echo")
    assert post_execute(client, doc).status_code == 401
    assert post_execute(client, doc, **{"x-runner-service-token": "wrong"}).status_code == 401
    assert post_execute(client, doc, **{"x-runner-service-token": "s3cret"}).status_code == 200
    assert post_execute(client, doc, Authorization="Bearer s3cret").status_code == 200


def test_request_rejections_have_json_bodies(client):
    r = client.post("/v1/execute", data="{", content_type="application/json")
    assert r.status_code == 400 and r.get_json()["error"] == "malformed_json"
    r = client.post("/v1/execute", data="{}", content_type="text/plain")
    assert r.status_code == 415 and r.is_json
    r = client.post("/v1/execute", json={"context": {}, "http": {"method": "GET", "path": "/"}})
    assert r.status_code == 422 and r.get_json()["field"] == "context.tenant_id"
    r = client.get("/v1/execute")
    assert r.status_code == 405 and r.is_json


def test_scenario_1_structure_with_dummy_hash(client):
    """Reference test 1: the route exists and answers JSON even for a dummy hash."""
    doc = execute_body("x")
    doc["context"]["content_hash"] = "sha256:dummy"
    r = post_execute(client, doc)
    assert r.status_code != 404 and r.get_json()["status"] == 400


def test_web_process_never_imports_wasmtime(tmp_path):
    import subprocess
    code = ("import sys; from app import create_app; "
            f"create_app({{'cache_root': {str(tmp_path)!r}, 'bundle_store_base': {str(tmp_path)!r}}}); "
            "print('wasmtime' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_guest_log_lines_reach_the_debug_stream(module_app, client, mini_hash):
    run(client, mini_hash, path="/echo/logged")
    events = svc(module_app).executor.debug.recent("tenant-a", "ext-a")
    assert any(e["message"] == "/echo/logged" and e["request"] == "req-1" for e in events)
    run(client, mini_hash, path="/loop", limits={"timeout_ms": 20})
    events = svc(module_app).executor.debug.recent("tenant-a", "ext-a")
    assert events[-1]["level"] == "error" and events[-1]["message"].startswith("execute failed: execute_failed")


def test_decoded_body_helper_roundtrip(client, mini_hash):
    out = run(client, mini_hash, path="/echo", body=json.dumps({"a": 1}).encode())
    assert decoded_body(out) == {"a": 1}


def test_concurrent_first_requests_compile_once(module_app, mini_wasm):
    from service import metrics

    store = svc(module_app).settings.bundles.bundle_store_base
    fresh = publish(store, "tenant-a", "ext-a", {"dist/main.wasm": mini_wasm, "manifest.json": b'{"n": "fresh"}'})
    before = metrics.COMPILES._value.get()
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        outs = list(ex.map(lambda _: run(module_app.test_client(), fresh, path="/echo"), range(4)))
    assert all(o["status"] == 200 for o in outs)
    assert metrics.COMPILES._value.get() - before == 1


def test_corrupt_artifact_is_deleted_and_rebuilt(make_app, mini_wasm):
    from runner.artifacts import artifact_path

    app = make_app(workers=1)
    store = svc(app).settings.bundles.bundle_store_base
    digest = publish(store, "tenant-a", "ext-a", {"dist/main.wasm": mini_wasm, "manifest.json": b'{"n": "corrupt"}'})
    assert run(app.test_client(), digest, path="/echo")["status"] == 200
    artifact = artifact_path(svc(app).bundles.ensure("tenant-a", "ext-a", digest).compiled_dir, False)
    artifact.write_bytes(b"not an ELF file")
    fresh = make_app(workers=1)  # new workers: nothing loaded in memory
    assert run(fresh.test_client(), digest, path="/echo")["status"] == 200
    assert artifact.read_bytes()[:4] == b"\x7fELF"


def test_requests_prefer_a_worker_with_the_component_loaded(module_app, client, mini_wasm):
    store = svc(module_app).settings.bundles.bundle_store_base
    digest = publish(store, "tenant-a", "ext-a", {"dist/main.wasm": mini_wasm, "manifest.json": b'{"n": "affine"}'})
    pool = svc(module_app).executor.pool
    run(client, digest, path="/echo")
    holders = [w.slot for w in pool._workers if digest in w.loaded]
    for _ in range(5):
        run(client, digest, path="/echo")
    assert len(holders) == 1
    assert [w.slot for w in pool._workers if digest in w.loaded] == holders  # no other worker had to load it


def test_unwritable_cache_is_bundle_fetch_failed(make_app, mini_hash, tmp_path):
    (tmp_path / "file").write_text("")  # as root, a path under a regular file is what cannot be created
    client = make_app(cache_root=str(tmp_path / "file" / "cache")).test_client()
    out = run(client, mini_hash, path="/echo")
    assert out["status"] == 502
    assert out["error"].startswith("bundle_fetch_failed: cache not writable: ")


def test_compiled_artifacts_are_counted_in_the_cache_size(make_app, mini_wasm, tmp_path):
    from storage.bundles.cache_dir import tree_bytes

    app = make_app(workers=1, cache_root=str(tmp_path / "cache"))
    store, bundles = svc(app).settings.bundles.bundle_store_base, svc(app).bundles
    for n, first_use in enumerate((lambda d: run(app.test_client(), d, path="/echo"),
                                   lambda d: svc(app).executor.warm("tenant-a", "ext-a", d))):
        digest = publish(store, "tenant-a", "ext-a", {"dist/main.wasm": mini_wasm,
                                                      "manifest.json": b'{"n": "size-%d"}' % n})
        first_use(digest)
        root = bundles.ensure("tenant-a", "ext-a", digest).root
        assert any((root / "compiled").iterdir())
        assert bundles.dir.read_meta(digest)["bytes"] >= tree_bytes(root / "bundle") + tree_bytes(root / "compiled")


def test_a_cold_stampede_measures_the_bundle_once(module_app, mini_wasm, monkeypatch):
    """50 first requests find no compiled artifact; the bundle is re-walked and meta.json rewritten once."""
    bundles = svc(module_app).bundles
    store = svc(module_app).settings.bundles.bundle_store_base
    fresh = publish(store, "tenant-a", "ext-a", {"dist/main.wasm": mini_wasm, "manifest.json": b'{"n": "stampede"}'})
    measured = []
    remeasure = bundles.dir.remeasure
    monkeypatch.setattr(bundles.dir, "remeasure", lambda h: measured.append(h) or remeasure(h))
    with concurrent.futures.ThreadPoolExecutor(50) as ex:
        outs = list(ex.map(lambda _: run(module_app.test_client(), fresh, path="/echo"), range(50)))
    assert all(o["status"] == 200 for o in outs)
    assert measured == [fresh]
