"""alga:extension/storage in both modes (reference §4.5), from the SDK component.

Standalone: storage/registry/kv.py in the SQLite registry. Attached: a local server that
behaves like the Alga internal API (tests/fakes.py FakeAlga).
"""
import base64
import multiprocessing
import sqlite3

import pytest
from fakes import FakeAlga, Guest, u64, wire_bytes
from helpers import base_config, call_context, decoded_body

from app import service_of as svc
from runner.worker.host import storage as host_storage
from runner.worker.host.values import record
from runner.worker.wasm_compat import Err
from settings import Settings
from storage.registry import kv
from storage.registry.db import open_db
from storage.registry.kv import KVError, decode_cursor, encode_cursor

CAP = ["cap:storage.kv"]


def entry(ns, key, value: bytes, revision=None):
    return {"namespace": ns, "key": key, "value": wire_bytes(value),
            "revision": None if revision is None else u64(revision)}


def _app(shared_dirs, tmp_path_factory, **overrides):
    from app import create_app

    app = create_app({**base_config(shared_dirs, tmp_path_factory.mktemp("storage")), "workers": 2, **overrides})
    app.testing = True
    return app


@pytest.fixture(scope="module")
def local_app(shared_dirs, tmp_path_factory):
    app = _app(shared_dirs, tmp_path_factory, storage_max_value_bytes=4096)
    yield app
    svc(app).lifecycle.stop()


@pytest.fixture(scope="module")
def guest(local_app, sdk_wasm):
    return Guest(local_app, sdk_wasm)


# -- standalone, from the component ---------------------------------------------------------

def run_contract(guest, ns, **extra):
    """The storage contract; the same assertions hold in both modes."""
    call = lambda fn, *args, **kw: guest.call("storage", fn, *args, providers=CAP, **{**extra, **kw})  # noqa: E731
    assert call("get", ns, "k1") == {"err": "missing"}
    first = call("put", entry(ns, "k1", b"v1"))["ok"]
    assert first == {"namespace": ns, "key": "k1", "value": b"v1", "revision": 1}
    assert call("put", entry(ns, "k1", b"v2"))["ok"]["revision"] == 2
    assert call("get", ns, "k1")["ok"] == {"namespace": ns, "key": "k1", "value": b"v2", "revision": 2}
    # optimistic concurrency: the stored revision wins, a stale one is a conflict
    assert call("put", entry(ns, "k1", b"v3", revision=2))["ok"]["revision"] == 3
    assert call("put", entry(ns, "k1", b"stale", revision=2)) == {"err": "conflict"}
    assert call("put", entry(ns, "new", b"x", revision=1)) == {"err": "conflict"}  # absent key + revision
    assert call("get", ns, "k1")["ok"]["value"] == b"v3"
    # list in key order, binary values intact
    call("put", entry(ns, "a", bytes(range(256))))
    call("put", entry(ns, "b", b""))
    listed = call("list-entries", ns, None)["ok"]
    assert [e["key"] for e in listed] == ["a", "b", "k1"]
    assert listed[0]["value"] == bytes(range(256)) and listed[1]["value"] == b""
    assert [e["revision"] for e in listed] == [1, 1, 3]
    # delete, then deleting again is what the reference answers for {"success": false}
    assert call("delete", ns, "a") == {"ok": None}
    assert call("get", ns, "a") == {"err": "missing"}
    assert call("delete", ns, "a") == {"err": "conflict"}
    assert call("list-entries", "empty-ns", None) == {"ok": []}


@pytest.mark.slow
def test_contract_standalone(guest):
    run_contract(guest, "ns-local")


@pytest.mark.slow
def test_preconditions(guest):
    assert guest.call("storage", "get", "ns", "k") == {"err": "denied"}  # no capability
    for install in (None, ""):
        for fn, args in (("get", ["ns", "k"]), ("put", [entry("ns", "k", b"v")]), ("delete", ["ns", "k"]),
                         ("list-entries", ["ns", None])):
            assert guest.call("storage", fn, *args, providers=CAP, context={"install_id": install}) == {"err": "denied"}


@pytest.mark.slow
def test_limits_answer_like_the_server(guest):
    call = lambda fn, *args: guest.call("storage", fn, *args, providers=CAP)  # noqa: E731
    assert call("put", entry("n" * 128, "k" * 256, b"ok"))["ok"]["revision"] == 1
    assert call("put", entry("n" * 129, "k", b"x")) == {"err": "internal"}
    assert call("put", entry("", "k", b"x")) == {"err": "internal"}
    assert call("put", entry("ns", "k" * 257, b"x")) == {"err": "internal"}
    assert call("put", entry("ns", "", b"x")) == {"err": "internal"}
    assert call("put", entry("ns", "a/b", b"x")) == {"err": "internal"}
    assert call("put", entry("ns", "big", b"x" * 4096))["ok"]["revision"] == 1  # EXT_STORAGE_MAX_VALUE_BYTES
    assert call("put", entry("ns", "big", b"x" * 4097)) == {"err": "internal"}
    assert call("get", "ns", "big")["ok"]["value"] == b"x" * 4096


@pytest.mark.slow
def test_isolated_per_tenant_and_install(local_app, sdk_wasm, guest):
    other_tenant = Guest(local_app, sdk_wasm, tenant="tenant-b")
    guest.call("storage", "put", entry("iso", "k", b"install-1"), providers=CAP)
    guest.call("storage", "put", entry("iso", "k", b"install-2"), providers=CAP, context={"install_id": "install-2"})
    assert guest.call("storage", "get", "iso", "k", providers=CAP)["ok"]["value"] == b"install-1"
    assert guest.call("storage", "get", "iso", "k", providers=CAP,
                      context={"install_id": "install-2"})["ok"]["value"] == b"install-2"
    assert other_tenant.call("storage", "get", "iso", "k", providers=CAP) == {"err": "missing"}
    assert other_tenant.call("storage", "list-entries", "iso", None, providers=CAP) == {"ok": []}


@pytest.mark.slow
def test_list_pages_of_25_with_the_servers_cursor(guest):
    for i in range(30):
        guest.call("storage", "put", entry("paged", f"key-{i:02d}", b"v"), providers=CAP)
    first = guest.call("storage", "list-entries", "paged", None, providers=CAP)["ok"]
    assert [e["key"] for e in first] == [f"key-{i:02d}" for i in range(25)]
    second = guest.call("storage", "list-entries", "paged", encode_cursor("key-24"), providers=CAP)["ok"]
    assert [e["key"] for e in second] == [f"key-{i:02d}" for i in range(25, 30)]
    assert guest.call("storage", "list-entries", "paged", "not a cursor", providers=CAP) == {"err": "internal"}


@pytest.mark.slow
def test_sdk_round_trip_route(guest):
    """The /all route goes through the SDK's HostBindings adapter (put, get, missing get, list)."""
    user = {"user_id": "u1", "user_email": "u@example.com", "user_name": "U", "user_type": "internal"}
    out = guest.execute("/all", providers=["cap:storage.kv"], context={"install_id": "install-all"}, user=user)
    body = decoded_body(out)
    assert body["ok"] is True, body
    assert body["stored"] == "v1" and body["missing"] is None
    assert body["listed"] == [{"key": "k1", "value": "v1", "revision": 1}]


# -- standalone, the store itself -----------------------------------------------------------

def test_cursor_format_is_the_servers():
    cursor = encode_cursor("k/é")
    assert "=" not in cursor and decode_cursor(cursor) == "k/é"
    assert base64.urlsafe_b64decode(cursor + "==").decode() == '{"key": "k/\\u00e9"}'
    with pytest.raises(KVError):
        decode_cursor("%%%")


def _kv(db_path, operation, **body):
    return kv.handle(open_db(db_path), "t", "i", {"operation": operation, "namespace": "ns", **body}, 1024)


def _writer(db_path, worker, rounds):
    done = 0
    while done < rounds:
        status, current = _kv(db_path, "get", key="counter")
        value, revision = (int(base64.b64decode(current["value"])), current["revision"]) if status == 200 else (0, None)
        status, _ = _kv(db_path, "put", key="counter", value=base64.b64encode(str(value + 1).encode()).decode(),
                        ifRevision=revision)
        if status == 409:
            continue
        assert status == 200
        assert _kv(db_path, "put", key=f"w{worker}-{done}", value="eA==")[0] == 200
        done += 1


def test_concurrent_writers_in_several_processes(tmp_path):
    db = str(tmp_path / "registry.db")
    _kv(db, "list")  # create and migrate once
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(db, w, 40)) for w in range(4)]
    [p.start() for p in procs]
    [p.join(120) for p in procs]
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    status, counter = _kv(db, "get", key="counter")
    assert int(base64.b64decode(counter["value"])) == 160
    assert counter["revision"] == 160
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM ext_storage WHERE key LIKE 'w%'").fetchone()[0] == 160
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# -- attached, from the component -----------------------------------------------------------

@pytest.fixture(scope="module")
def alga():
    server = FakeAlga()
    yield server
    server.close()


@pytest.fixture(scope="module")
def attached_guest(shared_dirs, tmp_path_factory, sdk_wasm, alga):
    # a trailing "/api/" is stripped from the base, as the reference does
    app = _app(shared_dirs, tmp_path_factory, storage_api_base_url=alga.url + "/api/",
               storage_api_token=alga.token, workers=1)
    yield Guest(app, sdk_wasm)
    svc(app).lifecycle.stop()


@pytest.mark.slow
def test_contract_attached(attached_guest, alga):
    run_contract(attached_guest, "ns-remote")
    install, headers, body = alga.calls("storage")[0]
    assert install == "install-1"
    assert headers["x-runner-auth"] == "runner-token" and headers["content-type"] == "application/json"
    assert body == {"operation": "get", "namespace": "ns-remote", "key": "k1"}


@pytest.mark.slow
def test_attached_payloads(attached_guest, alga):
    before = len(alga.calls("storage"))
    attached_guest.call("storage", "put", entry("p", "k", b"\x00\xffbytes"), providers=CAP)
    attached_guest.call("storage", "put", entry("p", "k", b"again", revision=1), providers=CAP)
    attached_guest.call("storage", "list-entries", "p", "CURSOR", providers=CAP)
    attached_guest.call("storage", "list-entries", "p", None, providers=CAP)
    attached_guest.call("storage", "delete", "p", "k", providers=CAP)
    bodies = [b for _, _, b in alga.calls("storage")[before:]]
    assert bodies[0] == {"operation": "put", "namespace": "p", "key": "k",
                         "value": base64.b64encode(b"\x00\xffbytes").decode(),
                         "metadata": {"encoding": "base64-bytes"}}  # no ifRevision when none
    assert bodies[1]["ifRevision"] == 1
    assert bodies[2] == {"operation": "list", "namespace": "p", "includeValues": True, "includeMetadata": True,
                         "cursor": "CURSOR"}
    assert "cursor" not in bodies[3]
    assert bodies[4] == {"operation": "delete", "namespace": "p", "key": "k"}


@pytest.mark.slow
def test_attached_install_id_is_a_path_segment(attached_guest, alga):
    attached_guest.call("storage", "get", "ns", "k", providers=CAP, context={"install_id": "a/b c"})
    assert alga.requests[-1].path == "/api/internal/ext-storage/install/a%2Fb%20c"


# -- attached, in process: status mapping and value decoding ---------------------------------

def ctx_for(alga, **settings):
    s = Settings.from_env({}, **{"storage_api_base_url": alga.url, "storage_api_token": alga.token, **settings})
    return call_context(s, install="inst", grants={"cap:storage.kv"})


@pytest.mark.parametrize("status,code", [(401, "denied"), (403, "denied"), (404, "missing"), (409, "conflict"),
                                         (429, "denied"), (400, "internal"), (500, "internal"), (302, "internal")])
def test_status_mapping(alga, status, code):
    alga.replies[("storage", "get")] = (status, {"error": "x"})
    try:
        out = host_storage.get(ctx_for(alga), "ns", "k")
    finally:
        del alga.replies[("storage", "get")]
    assert isinstance(out, Err) and out.payload == code


def test_not_configured_and_transport(alga):
    out = host_storage.get(ctx_for(alga, storage_api_token="", service_token=""), "ns", "k")
    assert out.payload == "internal"
    out = host_storage.get(ctx_for(alga, storage_api_base_url="", registry_base_url="http://127.0.0.1:9"), "ns", "k")
    assert out.payload == "internal"  # nothing listens there
    out = host_storage.get(ctx_for(alga, storage_api_token="wrong"), "ns", "k")
    assert out.payload == "denied"  # the server's 401
    out = host_storage.get(ctx_for(alga, storage_api_token="", service_token=alga.token), "ns", "k")
    assert out.payload == "missing"  # RUNNER_SERVICE_TOKEN is the fallback


def test_non_json_and_empty_answers(alga):
    ctx = ctx_for(alga)
    alga.replies[("storage", "get")] = (200, "not json")
    assert host_storage.get(ctx, "ns", "k").payload == "internal"
    alga.replies[("storage", "delete")] = (200, "")
    assert host_storage.delete(ctx, "ns", "k") is None  # empty 2xx body -> null -> ok
    alga.replies[("storage", "put")] = (200, {"revision": "7"})
    assert host_storage.put(ctx, record(namespace="n", key="k", value=b"v", revision=None)).revision is None
    alga.replies[("storage", "list")] = (200, {"items": [{"namespace": "n", "key": "a", "value": 5}, {"value": 1}]})
    assert host_storage.list_entries(ctx, "n", None).payload == "internal"  # one item has no key
    for op in ("get", "delete", "put", "list"):
        del alga.replies[("storage", op)]


@pytest.mark.parametrize("value,metadata,expected", [
    ("AAEC", {"encoding": "base64-bytes"}, b"\x00\x01\x02"),
    ({"_bytes_b64": "aGk="}, {}, b"hi"),
    ("aGk=", {}, b"hi"),                        # a string that is valid base64 is decoded
    ("not base64!", {}, b"not base64!"),        # otherwise its UTF-8 bytes
    ({"a": [1, 2]}, {}, b'{"a":[1,2]}'),        # anything else: the JSON text
    (None, {}, b"null"),
])
def test_value_decoding(alga, value, metadata, expected):
    alga.replies[("storage", "get")] = (200, {"key": "k", "value": value, "metadata": metadata, "revision": 4})
    try:
        out = host_storage.get(ctx_for(alga), "ns", "fallback-key")
    finally:
        del alga.replies[("storage", "get")]
    assert out.value == expected and out.revision == 4
    assert out.namespace == "ns" and out.key == "k"  # namespace falls back to the requested one


def test_bad_base64_with_base64_encoding_is_internal(alga):
    alga.replies[("storage", "get")] = (200, {"value": "@@@", "metadata": {"encoding": "base64-bytes"}})
    try:
        assert host_storage.get(ctx_for(alga), "ns", "k").payload == "internal"
    finally:
        del alga.replies[("storage", "get")]
