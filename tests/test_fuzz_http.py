"""HTTP fuzzing of a real Gunicorn server: 2,000 mutated /v1/execute requests and 2,000 /ext-ui paths
(seeded, so a failure replays). Every answer must be the contract's: no 5xx but the coded ones, JSON
bodies (or the reference's documented text bodies for /ext-ui), and the service healthy after.

Requests go out as raw bytes over a socket, so header values and paths no HTTP client would send
(control characters, invalid UTF-8, lone surrogates) reach the server.
"""
from __future__ import annotations

import copy
import http.client
import json
import random
import socket

import pytest
import requests
from helpers import execute_body, free_port, publish, start_gunicorn, stop_process

pytestmark = pytest.mark.slow
SEED = 1107
CASES = 2000
TENANT, EXT = "tenant-a", "ext-a"
CODED = ("execute_failed", "bundle_fetch_failed", "engine_init_failed", "secret_decrypt_failed")
UI_TEXT = {b"invalid content hash", b"invalid path", b"asset too large"}
UI_CODES = {500: {"extract_failed"}, 502: {"archive_hash_mismatch"}}


@pytest.fixture(scope="module")
def server(tmp_path_factory, mini_wasm):
    work = tmp_path_factory.mktemp("fuzz")
    ui = {"ui/index.html": b"<!doctype html><p>hi</p>", "ui/app.js": b"console.log(1)", "ui/a/b.css": b"p{}"}
    digest = publish(work / "bundles", TENANT, EXT, {"dist/main.wasm": mini_wasm, **ui})
    env = {"BUNDLE_STORE_BASE": str(work / "bundles"), "EXT_CACHE_ROOT": str(work / "cache"), "EXT_WORKERS": "2",
           "PORT": str(free_port()), "EXT_REGISTRY_DB": str(work / "registry.db"),
           "EXT_SECRETS_KEY_FILE": str(work / "secrets.key"), "EXT_INSTALL_SAMPLES": "false",
           "EXT_STATIC_STRICT_VALIDATION": "false", "EXT_QUEUE_SIZE": "1000",
           "EXT_DEFAULT_TIMEOUT_MS": "1000", "EXT_MAX_TIMEOUT_MS": "2000"}  # /loop with any timeout ends soon
    proc, base = start_gunicorn(env, work / "server.log")
    yield {"base": base, "port": int(env["PORT"]), "hash": digest, "proc": proc}
    stop_process(proc)


def raw_request(port: int, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]],
                body: bytes = b"") -> tuple[int, dict, bytes]:
    head = b"%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" % (method, target)
    head += b"".join(b"%s: %s\r\n" % h for h in headers)
    if body or method == b"POST":
        head += b"Content-Length: %d\r\n" % len(body)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head + b"\r\n" + body)
        answer = http.client.HTTPResponse(sock, method=method.decode("latin-1"))
        answer.begin()
        data = answer.read()
    return answer.status, {k.lower(): v for k, v in answer.getheaders()}, data


# /v1/execute -------------------------------------------------------------------------------------------

NASTY = [None, True, 0, -1, 1 << 64, (1 << 64) - 1, 1.5, 1e308, "", "x" * 5000, [], {}, [1, [2]], {"a": "b"},
         "\u0000", "é", "../../etc", "sha256:" + "f" * 64, "\U0001F600"]
PATHS = [("context",), ("context", "tenant_id"), ("context", "extension_id"), ("context", "content_hash"),
         ("context", "config"), ("context", "config", "k"), ("context", "request_id"), ("http",),
         ("http", "method"), ("http", "path"), ("http", "query"), ("http", "headers"), ("http", "headers", "h"),
         ("http", "body_b64"), ("limits",), ("limits", "timeout_ms"), ("limits", "memory_mb"), ("limits", "fuel"),
         ("providers",), ("secret_envelope",), ("secret_envelope", "ciphertext_b64"), ("user",),
         ("user", "user_id")]
TOKENS = [b"\\ud800", b"\\udfff", b"\xed\xa0\x80", b"\xff", b"\x00", b"NaN", b"1e999", b"[" * 3000, b"{\"a\":" * 200,
          b"\"", b",", b"}", b"]", b"null", b"-0", b"99999999999999999999999"]
CONTENT_TYPES = [b"application/json", b"application/json; charset=utf-8", b"APPLICATION/JSON", b"text/plain",
                 b"application/json\x01", b""]
ROUTING = [TENANT.encode(), b"", b"../x", b"t\xff", b"t\xc3\xa9", b"a" * 300, b"tenant-b"]


def _set(doc: dict, path: tuple, value) -> None:
    target = doc
    for key in path[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[path[-1]] = value


def execute_case(rng: random.Random, digest: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    doc = execute_body(digest, path=rng.choice(["/echo", "/loop", "/grow", "/nob", "/x"]), body=b"{}",
                       limits={"timeout_ms": rng.choice([20, 100, 1000])})
    for _ in range(rng.randint(0, 3)):
        _set(doc, rng.choice(PATHS), copy.deepcopy(rng.choice(NASTY)))
    body = json.dumps(doc, ensure_ascii=rng.random() < 0.5).encode()
    for _ in range(rng.choice([0, 0, 1, 2])):  # byte-level damage
        at = rng.randrange(len(body) + 1)
        kind = rng.random()
        if kind < 0.4:
            body = body[:at] + rng.choice(TOKENS) + body[at:]
        elif kind < 0.7:
            body = body[:at] + body[at + rng.randint(1, 8):]
        else:
            body = body[:at] + bytes([rng.randrange(256)]) + body[at + 1:]
    headers = [(b"Content-Type", rng.choice(CONTENT_TYPES) if rng.random() < 0.2 else b"application/json"),
               (b"x-alga-tenant", rng.choice(ROUTING) if rng.random() < 0.2 else TENANT.encode()),
               (b"x-alga-extension", EXT.encode())]
    if rng.random() < 0.1:
        headers.append((b"x-idempotency-key", rng.choice([b"k", b"\xff\xfe", b"a" * 500])))
    return body, headers


def check_execute(status: int, headers: dict, data: bytes) -> None:
    assert headers.get("content-type", "").startswith("application/json"), (status, data[:200])
    answer = json.loads(data)
    if status >= 500:
        assert status == 503 and answer["error"] == "runner_busy", (status, answer)
    if status == 200:
        assert set(answer) == {"status", "headers", "body_b64", "error"}, answer
        if answer["status"] >= 500 and answer["error"] is not None:
            assert answer["error"].startswith(CODED), answer
    else:
        assert isinstance(answer["error"], str) and isinstance(answer["message"], str), answer


def test_fuzzed_execute_requests_get_contract_answers(server):
    rng = random.Random(SEED)
    seen = set()
    for i in range(CASES):
        body, headers = execute_case(rng, server["hash"])
        try:
            status, answer_headers, data = raw_request(server["port"], b"POST", b"/v1/execute", headers, body)
            check_execute(status, answer_headers, data)
        except (AssertionError, OSError, ValueError) as e:
            raise AssertionError(f"case {i}: {body[:600]!r} {headers}") from e
        seen.add(status)
    assert {200, 400, 415, 422} <= seen  # the mutations reached every kind of answer


# /ext-ui -----------------------------------------------------------------------------------------------

SEGMENTS = [b"index.html", b"app.js", b"a", b"b.css", b"", b".", b"..", b"%2e%2e", b"%2E", b".git", b"%00",
            b"%ff", b"\xff", b"\xc3\xa9", b"\xed\xa0\x80", b"a\\b", b"%5c", b"x.exe", b"X.JS", b"%20", b"~",
            b"a" * 300, b"%", b"%zz", b"?", b"#", b";", b"\x7f", b"\t", b"\x85"]


def ui_case(rng: random.Random, digest: str) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]]:
    prefix = rng.choice([b"/ext-ui/", b"/runner/ext-ui/", b"/ext-ui//", b"/EXT-UI/"])
    ext = rng.choice([EXT.encode(), b"other", b"..", b"%2e", b""])
    content_hash = rng.choice([b"sha256:" + digest.encode(), b"sha256:" + digest.upper().encode(), digest.encode(),
                               b"sha256:abc", b"sha256:" + b"0" * 64, b"sha256:" + digest.encode() + b"00"])
    tail = b"/".join(rng.choice(SEGMENTS) for _ in range(rng.randint(0, 4)))
    target = prefix + ext + b"/" + content_hash + b"/" + tail
    if rng.random() < 0.5:
        target += b"?tenant=" + rng.choice([TENANT.encode(), b"", b"nobody", b"%ff", b"a&tenant=b"])
    headers = []
    if rng.random() < 0.2:
        headers.append((b"Range", rng.choice([b"bytes=0-3", b"bytes=5-1", b"bytes=-0", b"bytes=99999-", b"x"])))
    if rng.random() < 0.1:
        headers.append((b"If-None-Match", rng.choice([b'"sha256-x"', b"*", b"\xff"])))
    if rng.random() < 0.1:
        headers.append((b"Accept-Encoding", rng.choice([b"br", b"gzip;q=0", b"\x00"])))
    return rng.choice([b"GET", b"GET", b"HEAD"]), target, headers


def check_ui(method: bytes, status: int, headers: dict, data: bytes) -> None:
    is_json = headers.get("content-type", "").startswith("application/json")
    if method == b"HEAD":  # no body to look at
        assert status < 500 or status in UI_CODES, status
        return
    if status in UI_CODES:
        assert json.loads(data).get("code") in UI_CODES[status], (status, data[:200])
        return
    assert status < 500, (status, data[:200])
    if status in (200, 206, 304):
        return
    if is_json:  # routed errors (a path that is not /ext-ui after all) and Gunicorn's refusals
        assert isinstance(json.loads(data)["error"], str)
    elif status in (404, 416):  # not found, range not satisfiable: empty bodies
        assert data == b"", data[:200]
    else:
        assert data in UI_TEXT, (status, data[:200])


def test_fuzzed_ext_ui_paths_get_contract_answers(server):
    rng = random.Random(SEED + 1)
    seen = set()
    for i in range(CASES):
        method, target, headers = ui_case(rng, server["hash"])
        try:
            status, answer_headers, data = raw_request(server["port"], method, target, headers)
            check_ui(method, status, answer_headers, data)
        except (AssertionError, OSError, ValueError) as e:
            raise AssertionError(f"case {i}: {method} {target!r} {headers}") from e
        seen.add(status)
    assert {200, 400, 404} <= seen


def test_the_service_is_healthy_after_the_fuzzing(server):
    ready = requests.get(f"{server['base']}/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["workers"] == 2
    out = requests.post(f"{server['base']}/v1/execute", json=execute_body(server["hash"], path="/echo", body=b"ok"),
                        headers={"x-alga-tenant": TENANT, "x-alga-extension": EXT}, timeout=30).json()
    assert out["status"] == 200 and out["error"] is None
    assert server["proc"].poll() is None
