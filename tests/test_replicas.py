"""Several replicas behind one load balancer: idempotent replies are shared through Redis, the UI
is the same bytes everywhere, and a replica dying loses only what was in flight on it."""
import concurrent.futures
import os
import signal
import threading
import time

import pytest
import requests
from helpers import execute_body, free_port, needs_redis, publish, start_gunicorn, stop_process

from runner.replays import MemoryReplays, RedisReplays, replay_store

HEADERS = {"x-alga-tenant": "tenant-a", "x-alga-extension": "ext-a"}


@needs_redis
def test_redis_replays_are_scoped_expire_and_never_fail_a_call(redis_proc):
    replays = RedisReplays(redis_proc.url, ttl_s=60)
    outcome = {"status": 201, "headers": {"a": "b"}, "body_b64": "eA==", "error": None}
    replays.put("t", "e", "key-1", outcome)
    assert replays.get("t", "e", "key-1") == outcome
    assert replays.get("t", "other-ext", "key-1") is None and replays.get("other", "e", "key-1") is None
    client = redis_proc.client()
    (key,) = client.keys("alga-runner:idempotency:*")
    assert 0 < client.ttl(key) <= 60
    down = RedisReplays(f"redis://127.0.0.1:{free_port()}/0", ttl_s=60)
    assert down.get("t", "e", "key-1") is None
    down.put("t", "e", "key-1", outcome)  # logged, not raised


def test_the_store_follows_the_settings():
    assert isinstance(replay_store("", 10, 60), MemoryReplays)
    assert isinstance(replay_store("redis://127.0.0.1:1/0", 10, 60), RedisReplays)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, mini_wasm, redis_proc):
    work = tmp_path_factory.mktemp("replicas")
    digest = publish(work / "bundles", "tenant-a", "ext-a", {"dist/main.wasm": mini_wasm,
                                                            "ui/index.html": b"<h1>same everywhere</h1>"})
    servers = []
    for name in ("a", "b"):  # one bundle store and one Redis; caches and registries of their own
        env = {"BUNDLE_STORE_BASE": str(work / "bundles"), "EXT_CACHE_ROOT": str(work / f"cache-{name}"),
               "EXT_WORKERS": "1", "PORT": str(free_port()), "EXT_REGISTRY_DB": str(work / f"{name}.db"),
               "EXT_SECRETS_KEY_FILE": str(work / f"{name}.key"), "EXT_STATIC_STRICT_VALIDATION": "false",
               "EXT_IDEMPOTENCY_REDIS_URL": redis_proc.url, "EXT_SCHEDULER_ENABLED": "false"}
        servers.append(start_gunicorn(env, work / f"{name}.log", own_group=True))
    yield digest, servers
    for proc, _ in servers:
        stop_process(proc)


def execute(base: str, digest: str, body: bytes, key: str | None = None, path: str = "/echo"):
    headers = {**HEADERS, **({"x-idempotency-key": key} if key else {})}
    return requests.post(f"{base}/v1/execute", json=execute_body(digest, path=path, body=body), headers=headers,
                         timeout=30)


@pytest.mark.slow
@needs_redis
def test_a_reply_given_by_one_replica_is_replayed_by_the_other(replicas):
    digest, [(_, a), (_, b)] = replicas
    first = execute(a, digest, b"from a", key="order-42")
    assert first.status_code == 200 and first.json()["status"] == 200
    again = execute(b, digest, b"a different body", key="order-42")  # the echo proves B did not run it
    assert again.json() == first.json()
    assert execute(b, digest, b"fresh", key="order-43").json()["body_b64"] != first.json()["body_b64"]


@pytest.mark.slow
@needs_redis
def test_both_replicas_serve_the_same_ui_bytes_and_etags(replicas):
    digest, [(_, a), (_, b)] = replicas
    answers = [requests.get(f"{base}/ext-ui/ext-a/sha256:{digest}/index.html?tenant=tenant-a", timeout=10)
               for base in (a, b)]
    assert [r.status_code for r in answers] == [200, 200]
    assert answers[0].content == answers[1].content == b"<h1>same everywhere</h1>"
    assert answers[0].headers["ETag"] == answers[1].headers["ETag"]


@pytest.mark.slow
@needs_redis
def test_killing_a_replica_loses_only_its_requests_in_flight(replicas):
    """Four clients behind a failover balancer while A's whole process group is killed: a refused
    connection goes to the other replica, as a load balancer does; only requests cut mid-flight on A
    may be lost."""
    digest, [(proc_a, a), (_, b)] = replicas
    in_flight_on_a, lock = [0], threading.Lock()
    at_kill: list[int] = []

    def one(i: int) -> str:
        for base in (a, b) if i % 2 == 0 else (b, a):
            with lock:
                in_flight_on_a[0] += base == a
            try:
                answer = execute(base, digest, f"r{i}".encode())
                return "ok" if answer.json()["status"] == 200 else "bad"
            except requests.ConnectionError as e:
                if not _refused(e):
                    return "cut"
            except requests.exceptions.ChunkedEncodingError:  # the reply was cut mid-body
                return "cut"
            finally:
                with lock:
                    in_flight_on_a[0] -= base == a
        return "refused everywhere"

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(one, i) for i in range(40)]
        time.sleep(0.3)
        with lock:  # no new request reaches A until it is gone: what is counted is what was in flight
            at_kill.append(in_flight_on_a[0])
            os.killpg(proc_a.pid, signal.SIGKILL)
            proc_a.wait(10)
            while _listening(a):
                time.sleep(0.01)
        futures += [pool.submit(one, i) for i in range(40, 120)]
        results = [f.result() for f in futures]
    assert set(results) <= {"ok", "cut"}, results
    assert results.count("cut") <= at_kill[0] <= 4
    assert results.count("ok") >= 116


def _listening(base: str) -> bool:
    try:
        requests.get(f"{base}/livez", timeout=1)
        return True
    except requests.ConnectionError as e:
        return not _refused(e)


def _refused(error: requests.ConnectionError) -> bool:
    """Nothing was sent (no listener any more), as opposed to a connection cut mid-request."""
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    reason = error.args[0] if error.args else None
    return isinstance(reason, MaxRetryError) and isinstance(reason.reason, NewConnectionError)
