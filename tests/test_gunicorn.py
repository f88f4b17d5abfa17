"""The service under Gunicorn with gevent workers, over real HTTP."""
import concurrent.futures
import json
import os
import signal
import time

import pytest
import requests
from helpers import execute_body, free_port, publish, start_gunicorn, stop_process


@pytest.fixture(scope="module")
def server(tmp_path_factory, mini_wasm):
    work = tmp_path_factory.mktemp("gunicorn")
    big = os.urandom(600 << 10)  # above the in-memory size: sent with sendfile(2)
    digest = publish(work / "bundles", "tenant-a", "ext-a", {"dist/main.wasm": mini_wasm, "ui/big.png": big,
                                                             "ui/index.html": b"<!doctype html>ok"})
    env = {"BUNDLE_STORE_BASE": str(work / "bundles"), "EXT_CACHE_ROOT": str(work / "cache"), "EXT_WORKERS": "2",
           "PORT": str(free_port()), "EXT_REGISTRY_DB": str(work / "registry.db"),
           "EXT_SECRETS_KEY_FILE": str(work / "secrets.key"), "EXT_INSTALL_SAMPLES": "false",
           "EXT_STATIC_STRICT_VALIDATION": "false"}
    proc, base = start_gunicorn(env, work / "server.log")
    yield {"base": base, "hash": digest, "proc": proc, "big": big}
    stop_process(proc)


def call(server, path, timeout_ms=5000, body=b"x"):
    doc = execute_body(server["hash"], path=path, body=body, limits={"timeout_ms": timeout_ms})
    r = requests.post(f"{server['base']}/v1/execute", json=doc, timeout=30,
                      headers={"x-alga-tenant": "tenant-a", "x-alga-extension": "ext-a"})
    assert r.status_code == 200
    return r.json()


def test_execute_over_http(server):
    out = call(server, "/echo")
    assert out["status"] == 200 and out["headers"]["x-url"] == "/echo"


def test_execute_with_a_chunked_body(server):
    doc = json.dumps(execute_body(server["hash"], path="/echo", body=b"x")).encode()
    r = requests.post(f"{server['base']}/v1/execute", data=iter([doc[:10], doc[10:]]), timeout=30,
                      headers={"x-alga-tenant": "tenant-a", "x-alga-extension": "ext-a",
                               "content-type": "application/json"})
    assert r.status_code == 200 and r.json()["headers"]["x-url"] == "/echo"
    assert r.headers["Cache-Control"] == "no-store"


def test_large_and_small_ui_files(server):
    """A large file goes out with sendfile(2) under gevent, a small one from memory; both byte-exact."""
    base = f"{server['base']}/ext-ui/ext-a/sha256:{server['hash']}/"
    with requests.Session() as s:
        for _ in range(2):  # the second time from memory / the same open-file path
            r = s.get(base + "big.png", timeout=30)
            assert r.status_code == 200 and r.content == server["big"]
            assert r.headers["Content-Length"] == str(len(server["big"]))
            assert s.get(base + "index.html", timeout=30).content == b"<!doctype html>ok"
        part = s.get(base + "big.png", headers={"Range": "bytes=500000-500099"}, timeout=30)
        assert part.status_code == 206 and part.content == server["big"][500000:500100]


def test_waiting_for_workers_never_blocks_the_event_loop(server):
    call(server, "/echo")
    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        loops = [ex.submit(call, server, "/loop", 1500) for _ in range(4)]  # both workers busy, two queued
        time.sleep(0.3)
        started = time.monotonic()
        assert requests.get(f"{server['base']}/livez", timeout=5).ok
        assert time.monotonic() - started < 0.5
        results = [f.result() for f in loops]
    assert all(r["error"].startswith("execute_failed: timeout") for r in results)


def test_readyz_reports_the_pool(server):
    r = requests.get(f"{server['base']}/readyz", timeout=5)
    assert r.status_code == 200 and r.json()["workers"] == 2 and r.json()["ready"] is True


def test_metrics_are_summed_across_processes(server):
    call(server, "/echo")
    text = requests.get(f"{server['base']}/metrics", timeout=5).text
    assert 'alga_runner_executions_total{outcome="ok"}' in text
    assert "alga_runner_compiles_total" in text
    assert 'alga_runner_bundle_cache_total{result="miss"}' in text


@pytest.mark.parametrize("headers,status", [
    ({"x-big": "a" * 9000}, 431),  # over limit_request_field_size (8190)
    ({f"x-h{i}": "v" for i in range(120)}, 431),  # over limit_request_fields (100)
])
def test_requests_gunicorn_refuses_answer_json(server, headers, status):
    for method, path in (("POST", "/v1/execute"), ("GET", "/ext-ui/e/sha256:abc/index.html")):
        r = requests.request(method, server["base"] + path, headers=headers, data=b"{}", timeout=10)
        assert r.status_code == status
        assert r.headers["content-type"] == "application/json" and r.headers["cache-control"] == "no-store"
        body = r.json()
        assert body["error"] == "request_header_fields_too_large" and body["message"]


def test_an_over_long_request_line_answers_json(server):
    r = requests.get(server["base"] + "/ext-ui/" + "a" * 5000, timeout=10)
    assert r.status_code == 414 and r.json()["error"] == "uri_too_long"


def test_graceful_shutdown_lets_in_flight_work_finish(server):
    call(server, "/echo")
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        slow = ex.submit(call, server, "/loop", 1500)
        time.sleep(0.3)
        server["proc"].send_signal(signal.SIGTERM)
        time.sleep(0.2)
        assert slow.result()["error"].startswith("execute_failed: timeout")  # in-flight work completes
    server["proc"].wait(30)
    assert server["proc"].returncode == 0
