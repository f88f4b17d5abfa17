"""The Redis debug stream (reference §5) against a real redis-server started by the tests.

Key and field order, approximate MAXLEN, UTF-8-safe truncation, password
injection, the events an execution publishes (guest logs and failures), and
that publishing never blocks or fails an execution: Redis stopped mid-run,
Redis that never answers, reconnection with the reference's backoff.
"""
import socket
import threading
import time

import pytest
from fakes import Guest
from helpers import RedisProcess, base_config, free_port, needs_redis

from app import service_of as svc
from runner.debug import stream as debug_stream
from runner.debug.publisher import RedisPublisher, backoff_seconds, fields
from runner.debug.stream import DebugStream, stream_key
from runner.messages import ExecutionIds
from runner.settings import RunnerSettings, redis_url


def running(publisher: RedisPublisher) -> RedisPublisher:
    publisher.start()
    return publisher


def settings_for(url: str, **kw) -> RunnerSettings:
    return RunnerSettings(debug_redis_url=url, **kw)


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# -- pure pieces ------------------------------------------------------------------------------

def test_password_injection():
    assert redis_url("redis://h:6379/0", "p@ss word") == "redis://:p%40ss%20word@h:6379/0"
    assert redis_url("rediss://h:6380", "x") == "rediss://:x@h:6380"
    assert redis_url("redis://user:own@h:6379", "x") == "redis://user:own@h:6379"  # credentials present
    assert redis_url("unix:///tmp/r.sock", "x") == "unix:///tmp/r.sock"
    assert redis_url("redis://h", "") == "redis://h"


def test_backoff_is_the_references():
    assert [backoff_seconds(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_field_order_and_optional_fields():
    full = fields({"ts": 1, "level": "warn", "stream": "log", "tenant": "t", "extension": "e", "install": "i",
                   "request": "r", "version": "v", "message": "m", "truncated": False})
    assert list(full.items()) == [("ts", "1"), ("level", "warn"), ("stream", "log"), ("tenant", "t"),
                                  ("extension", "e"), ("install", "i"), ("request", "r"), ("version", "v"),
                                  ("message", "m"), ("truncated", "0")]
    bare = fields({"ts": 2, "level": "error", "stream": "stderr", "message": "", "truncated": True})
    assert list(bare) == ["ts", "level", "stream", "message", "truncated"] and bare["truncated"] == "1"


def test_stream_key():
    assert stream_key("ext-debug:", "Tenant-A", "Ext-B") == "ext-debug:tenant-a:ext-b"
    assert stream_key("ext:debug", "t", None) == "ext:debugt"
    assert stream_key("p:", None, None) == "p:unknown"


def test_from_settings_off_without_url():
    assert RedisPublisher.from_settings(RunnerSettings()) is None
    pub = running(RedisPublisher.from_settings(settings_for("redis://h:1", debug_redis_password="pw",
                                                    debug_stream_maxlen=50)))
    assert pub.url == "redis://:pw@h:1" and pub.maxlen == 50



def test_unread_subscription_closed_leaves_no_subscriber():
    debug = DebugStream(RunnerSettings())
    sub = debug.follow("t", "e", timeout=0.01)
    debug.publish(ExecutionIds(tenant="t", extension="e"), {"message": "m"})
    assert debug._subscribers == {"ext-debug:t:e": [sub._queue]}
    sub.close()
    sub.close()  # idempotent
    assert debug._subscribers == {} and list(sub) == []
    with debug.follow("t", "e", timeout=0.01) as sub:
        debug.publish(ExecutionIds(tenant="t", extension="e"), {"message": "live"})
        assert next(iter(sub))["message"] == "live" and next(iter(sub)) is None
    assert debug._subscribers == {}


def test_rings_are_bounded_least_recently_used_first(monkeypatch):
    monkeypatch.setattr(debug_stream, "MAX_RINGS", 3)
    debug = DebugStream(RunnerSettings())
    for ext in ("a", "b", "c"):
        debug.publish(ExecutionIds(tenant="t", extension=ext), {"message": ext})
    debug.publish(ExecutionIds(tenant="t", extension="a"), {"message": "a again"})  # "b" is now the oldest
    debug.publish(ExecutionIds(tenant="t", extension="d"), {"message": "d"})
    assert list(debug._rings) == ["ext-debug:t:c", "ext-debug:t:a", "ext-debug:t:d"]
    assert debug.recent("t", "b") == [] and [e["message"] for e in debug.recent("t", "a")] == ["a", "a again"]

# -- against redis-server ---------------------------------------------------------------------

@needs_redis
def test_xadd_key_fields_and_truncation(redis_proc):
    r = redis_proc.client()
    stream = DebugStream(settings_for(redis_proc.url, debug_max_event_bytes=10),
                         redis_publisher=running(RedisPublisher(redis_proc.url)))
    ids = ExecutionIds("Tenant-X", "Ext-Y", install="inst", request="req", version="v9")
    stream.publish(ids, {"ts": 1700000000123, "level": "info", "stream": "log", "message": "hello"})
    stream.publish(ids, {"level": "error", "stream": "stderr", "message": "ééééééé"})  # 14 bytes
    stream.publish(ExecutionIds("", ""), {"level": "warn", "message": "no context"})
    assert stream.redis.flush()
    entries = r.xrange("ext-debug:tenant-x:ext-y")
    assert list(entries[0][1].items()) == [
        ("ts", "1700000000123"), ("level", "info"), ("stream", "log"), ("tenant", "Tenant-X"),
        ("extension", "Ext-Y"), ("install", "inst"), ("request", "req"), ("version", "v9"), ("message", "hello"),
        ("truncated", "0")]
    cut = entries[1][1]
    assert cut["message"] == "ééééé" and cut["truncated"] == "1" and cut["stream"] == "stderr"
    assert r.xrange("ext-debug:unknown")[-1][1]["message"] == "no context"


@needs_redis
def test_maxlen_is_approximate(redis_proc):
    r = redis_proc.client()
    pub = running(RedisPublisher(redis_proc.url, maxlen=100))
    for i in range(1500):
        pub.submit("ext-debug:maxlen", {"ts": i, "level": "info", "stream": "log", "message": str(i)})
    assert pub.flush(20)
    assert 100 <= r.xlen("ext-debug:maxlen") < 400
    assert pub.stats["published"] == 1500


@needs_redis
def test_password_is_injected(redis_proc):
    server = RedisProcess(password="s3cret/pw").start()
    try:
        pub = running(RedisPublisher.from_settings(settings_for(server.url, debug_redis_password="s3cret/pw")))
        pub.submit("ext-debug:auth", {"ts": 1, "level": "info", "stream": "log", "message": "ok"})
        assert pub.flush() and pub.stats["published"] == 1
        assert server.client().xlen("ext-debug:auth") == 1
        wrong = running(RedisPublisher(server.url))  # no password: refused, dropped, never raised
        wrong.submit("ext-debug:auth", {"ts": 1, "message": "x"})
        assert wrong.flush() and wrong.stats["dropped"] == 1 and wrong.stats["connect_failures"] == 1
    finally:
        server.stop()


@needs_redis
def test_redis_stopped_mid_run_then_back():
    server = RedisProcess().start()
    pub = running(RedisPublisher(server.url))
    try:
        pub.submit("ext-debug:flaky", {"ts": 1, "message": "before"})
        assert pub.flush() and pub.stats["published"] == 1
        server.stop()
        started = time.monotonic()
        for i in range(200):
            pub.submit("ext-debug:flaky", {"ts": i, "message": "while down"})
        assert time.monotonic() - started < 0.5  # submitting never waits for Redis
        assert pub.flush(10)
        assert pub.stats["dropped"] == 200 and not pub.connected
        assert pub.stats["publish_failures"] + pub.stats["connect_failures"] >= 1
        server.start()  # same port
        assert wait_for(lambda: (pub.submit("ext-debug:flaky", {"ts": 9, "message": "after"}), pub.flush(),
                                 pub.connected)[-1], timeout=10)
        assert server.client().xrange("ext-debug:flaky")[-1][1]["message"] == "after"
        assert pub.connected
    finally:
        pub.stop()
        server.stop()


def test_unresponsive_redis_never_blocks_submit():
    """A server that accepts connections and never answers: events are dropped, submit stays instant."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted = []
    threading.Thread(target=lambda: [accepted.append(listener.accept()) for _ in range(16)], daemon=True).start()
    pub = running(RedisPublisher(f"redis://127.0.0.1:{listener.getsockname()[1]}", queue_size=10))
    try:
        started = time.monotonic()
        for i in range(500):
            pub.submit("ext-debug:slow", {"ts": i, "message": "x"})
        assert time.monotonic() - started < 0.5
        assert pub.stats["dropped"] >= 480  # the queue is full while the first attempt times out
        assert pub.flush(10)
        assert pub.stats["published"] == 0 and pub.stats["dropped"] == 500
    finally:
        pub.stop(0.1)
        listener.close()


def test_nothing_listening_counts_drops():
    pub = running(RedisPublisher(f"redis://127.0.0.1:{free_port()}"))
    for i in range(20):
        pub.submit("k", {"ts": i, "message": "x"})
    assert pub.flush()
    assert pub.stats["dropped"] == 20 and pub.stats["connect_failures"] == 1  # then backing off: no retries


# -- an execution publishes its events --------------------------------------------------------

@pytest.fixture(scope="module")
def debug_guest(redis_proc, shared_dirs, tmp_path_factory, sdk_wasm):
    from app import create_app

    app = create_app({**base_config(shared_dirs, tmp_path_factory.mktemp("debug")), "workers": 1,
                      "debug_redis_url": redis_proc.url, "debug_stream_prefix": "dbg:"})
    app.testing = True
    yield Guest(app, sdk_wasm, tenant="Tenant-A", extension="ext-a")
    svc(app).lifecycle.stop()


@needs_redis
@pytest.mark.slow
def test_guest_logs_and_failures_reach_redis(debug_guest, redis_proc):
    r = redis_proc.client()
    key = "dbg:tenant-a:ext-a"
    r.delete(key)
    out = debug_guest.execute("/log", http={"query": {"msg": "héllo"}}, context={"request_id": "req-log"})
    assert out["status"] == 200
    publisher = svc(debug_guest.client.application).executor.debug.redis
    assert publisher.flush()
    events = [e for _, e in r.xrange(key)]
    assert [(e["level"], e["stream"], e["message"]) for e in events] == [
        ("info", "log", "héllo"), ("warn", "log", "warn: héllo"), ("error", "log", "error: héllo")]
    assert all(e["tenant"] == "Tenant-A" and e["extension"] == "ext-a" and e["install"] == "install-1"
               and e["request"] == "req-log" and e["version"] == "v1" for e in events)
    # execute failure (a timeout) and secret decryption failure
    out = debug_guest.execute("/loop", limits={"timeout_ms": 100})
    assert out["error"].startswith("execute_failed")
    out = debug_guest.execute("/log", secret_envelope={"ciphertext_b64": "!!!"})
    assert out["error"] == "secret_decrypt_failed"
    assert publisher.flush()
    tail = [e for _, e in r.xrange(key)][-2:]
    assert tail[0]["level"] == "error" and tail[0]["message"].startswith("execute failed: execute_failed: timeout")
    assert tail[1]["message"] == "secret envelope decryption failed: secret_envelope.base64_decode_failed"


@needs_redis
@pytest.mark.slow
def test_executions_succeed_while_redis_is_down(shared_dirs, tmp_path_factory, sdk_wasm):
    from app import create_app

    server = RedisProcess().start()
    app = create_app({**base_config(shared_dirs, tmp_path_factory.mktemp("debug-down")), "workers": 1,
                      "debug_redis_url": server.url})
    app.testing = True
    try:
        guest = Guest(app, sdk_wasm)
        assert guest.execute("/log", http={"query": {"msg": "up"}})["status"] == 200
        server.stop()
        for _ in range(5):
            started = time.monotonic()
            out = guest.execute("/log", http={"query": {"msg": "down"}})
            assert out["status"] == 200 and out["error"] is None
            assert time.monotonic() - started < 1.0
        debug = svc(app).debug
        assert debug.redis.flush()
        assert debug.redis.stats["dropped"] >= 15
        # the in-process ring still has them (flask ext logs, live panel)
        assert debug.recent("tenant-a", "ext-a")[-1]["message"] == "error: down"
    finally:
        svc(app).lifecycle.stop()
        server.stop()
