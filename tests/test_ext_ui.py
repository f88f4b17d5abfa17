"""GET /ext-ui (reference §3, scenarios 4-12), GET / host dispatch and POST /warmup.

Every test runs twice: through the WSGI fast path in front of Flask, and through the
Flask view alone; both must answer byte for byte the same.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import MethodType
from urllib.parse import parse_qs, urlsplit

import brotli
import pytest
from flask import Flask
from helpers import publish
from test_bundle_store import BundleServer

from app import service_of as svc
from static_cache.headers import DEFAULT_CSP
from storage.bundles.archive import bundle_bytes
from storage.bundles.stores import bundle_key

TENANT, EXT = "tenant-a", "demo-ext"
INDEX = b"<!doctype html><html><body>demo ui</body></html>" * 10
APP_JS = b"console.log('demo app');\n" * 200
FILES = {"ui/index.html": INDEX, "ui/assets/app.js": APP_JS, "dist/main.wasm": b"\0asm\1\0\0\0"}


class FakeRegistry:
    """/api/installs/validate and /api/installs/lookup-by-host, recording each call."""

    def __init__(self):
        self.valid: set[tuple[str, str, str]] = set()
        self.hosts: dict[str, object] = {}
        self.calls: list[tuple[str, dict, str]] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                url = urlsplit(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                registry.calls.append((url.path, q, self.headers.get("x-api-key", "")))
                if url.path == "/api/installs/validate":
                    self._send(200, {"valid": (q.get("tenant"), q.get("extension"), q.get("hash")) in registry.valid})
                elif url.path == "/api/installs/lookup-by-host" and q.get("host") in registry.hosts:
                    self._send(200, registry.hosts[q["host"]])
                else:
                    self._send(404, {"error": "not found"})

            def _send(self, status, body):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/some/path"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def registry():
    r = FakeRegistry()
    yield r
    r.close()


@pytest.fixture(params=["fast", "flask"])
def make_ui(request, tmp_path):
    """``make_ui(**settings)``: a test client of the service app on tmp folders, with or without the fast path."""
    from app import create_app

    apps = []

    def make(**overrides):
        config = {"bundle_store_base": str(tmp_path / "store"), "cache_root": str(tmp_path / "cache"),
                  "static_strict_validation": False, "workers": 1, "registry_db": str(tmp_path / "registry.db"),
                  "secrets_key_file": str(tmp_path / "secrets.key"), "scheduler_enabled": False,
                  "install_samples": False, "alga_auth_key": "test-key", **overrides}
        app = create_app(config)
        if request.param == "flask":
            app.wsgi_app = MethodType(Flask.wsgi_app, app)  # the Flask view alone, without the fast path
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        svc(app).lifecycle.stop()


@pytest.fixture
def store(tmp_path) -> Path:
    return tmp_path / "store"


def url(digest: str, tail: str = "index.html", ext: str = EXT) -> str:
    return f"/ext-ui/{ext}/sha256:{digest}/{tail}"


def get(client, digest, tail="index.html", tenant=TENANT, **headers):
    if tenant:
        headers["x-tenant-id"] = tenant
    return client.get(url(digest, tail), headers=headers)


# --- reference scenarios 4-12 ---------------------------------------------------------------

def test_cold_fetch_then_304(make_ui, store):  # 4
    digest = publish(store, TENANT, EXT, FILES)
    client = make_ui()
    assert client.post("/warmup", json={"content_hash": f"sha256:{digest}"}).status_code == 400
    r = get(client, digest)
    assert r.status_code == 200 and r.data == INDEX
    assert r.headers["Content-Type"].startswith("text/html")
    assert r.headers["ETag"].startswith('"sha256-') and "immutable" in r.headers["Cache-Control"]
    again = get(client, digest, **{"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == r.headers["ETag"] and "Content-Type" not in again.headers


def test_csp_and_nosniff(make_ui, store):  # 5
    digest = publish(store, TENANT, EXT, FILES)
    client = make_ui()
    html = get(client, digest)
    csp = html.headers["Content-Security-Policy"]
    assert csp == DEFAULT_CSP and "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors" not in csp and html.headers["X-Content-Type-Options"] == "nosniff"
    assert get(client, digest, **{"If-None-Match": html.headers["ETag"]}).headers["Content-Security-Policy"] == csp
    spa = get(client, digest, "some/client/route")
    assert spa.status_code == 200 and spa.data == INDEX and spa.headers["Content-Security-Policy"] == csp
    js = get(client, digest, "assets/app.js")
    assert js.headers["X-Content-Type-Options"] == "nosniff" and "Content-Security-Policy" not in js.headers
    assert js.headers["Content-Type"] == "text/javascript"
    framed = make_ui(ui_frame_ancestors="https://app.example.com", cache_root=str(store.parent / "c2"))
    assert get(framed, digest).headers["Content-Security-Policy"].endswith("; frame-ancestors https://app.example.com")
    custom = make_ui(ui_csp="default-src 'none'", ui_frame_ancestors="x", cache_root=str(store.parent / "c3"))
    assert get(custom, digest).headers["Content-Security-Policy"] == "default-src 'none'"


def test_strict_validation(make_ui, store, registry):  # 6
    digest = publish(store, TENANT, EXT, FILES)
    client = make_ui(static_strict_validation=True, registry_base_url=registry.base)
    assert get(client, digest).status_code == 404  # registry denies
    assert get(client, digest, tenant=None).status_code == 404  # no tenant at all
    registry.valid.add((TENANT, EXT, f"sha256:{digest}"))
    assert get(client, digest).status_code == 404  # the denial is remembered for 45 s
    path, query, key = registry.calls[0]
    assert path == "/api/installs/validate" and key == "test-key"
    assert query["hash"] == f"sha256:{digest}" and query["ts"].isdigit()
    fresh = make_ui(static_strict_validation=True, registry_base_url=registry.base)
    assert get(fresh, digest).status_code == 200
    assert make_ui(static_strict_validation=True).get(url(digest), headers={"x-tenant-id": TENANT}).status_code == 404


def test_traversal_is_rejected(make_ui, store):  # 7
    digest = publish(store, TENANT, EXT, FILES)
    r = get(make_ui(), digest, "../secret.txt")
    assert r.status_code == 400 and r.data == b"invalid path" and r.headers["Cache-Control"] == "no-store"


def test_oversize_asset_is_413(make_ui, store):  # 8
    digest = publish(store, TENANT, EXT, {**FILES, "ui/assets/big.png": b"\x89PNG" + bytes(128 * 1024)})
    client = make_ui(static_max_file_bytes=1024)
    r = get(client, digest, "assets/big.png")
    assert r.status_code == 413 and r.data == b"asset too large" and r.headers["Cache-Control"] == "no-store"
    assert get(client, digest, "some/route").status_code == 200  # the 490-byte index is under the limit
    assert get(make_ui(static_max_file_bytes=100), digest, "some/route").status_code == 413  # fallbacks too
    assert client.post("/warmup", json={"content_hash": "x"}).status_code == 400


def test_archive_hash_mismatch_is_502(make_ui, tmp_path):  # 9
    server = BundleServer()
    try:
        data, digest = bundle_bytes(FILES)
        flipped = bytearray(data)
        flipped[len(flipped) // 2] ^= 0xFF
        server.put(bundle_key(TENANT, EXT, digest), bytes(flipped))
        r = get(make_ui(bundle_store_base=server.base), digest)
        assert r.status_code == 502 and r.get_json() == {"code": "archive_hash_mismatch"}
        assert r.headers["Cache-Control"] == "no-store"
    finally:
        server.close()


def test_partial_extract_cleanup_on_failure(make_ui, store, tmp_path):  # 10
    junk = b"\x1f" * 1024
    digest = hashlib.sha256(junk).hexdigest()
    target = store / bundle_key(TENANT, EXT, digest)
    target.parent.mkdir(parents=True)
    target.write_bytes(junk)
    r = get(make_ui(), digest)
    assert r.status_code == 500 and r.get_json() == {"code": "extract_failed"}
    assert not (tmp_path / "cache" / digest).exists()



@pytest.mark.parametrize("content", [b"{not json", b"[]", b"{}"])
def test_corrupt_ui_index_is_an_extract_failure(make_ui, store, tmp_path, content):
    digest = publish(store, TENANT, EXT, FILES)
    assert get(make_ui(), digest).status_code == 200
    (tmp_path / "cache" / digest / "ui-index.json").write_bytes(content)
    r = get(make_ui(), digest)  # a new process loads the index from disk
    assert r.status_code == 500 and r.get_json() == {"code": "extract_failed"}

def test_served_from_an_http_bundle_store(make_ui):  # 12 (the container test, without docker)
    server = BundleServer()
    try:
        data, digest = bundle_bytes(FILES)
        server.put(bundle_key(TENANT, EXT, digest), data)
        client = make_ui(bundle_store_base=server.base + "/")
        assert client.get("/healthz").status_code == 200
        r = get(client, digest)
        assert r.status_code == 200 and b"demo ui" in r.data
        assert get(client, digest, "assets/app.js").status_code == 200
        assert len(server.gets) == 1
    finally:
        server.close()


# --- paths, hashes, methods -----------------------------------------------------------------

@pytest.mark.parametrize("tail, status", [
    (".env", 400), ("assets/.secret/file.js", 400), ("a/./b.js", 400), ("favicon.ico", 400), ("file.", 400),
    ("..%2Fsecret.txt", 400), ("%2E%2E/x.js", 400), ("/etc/passwd", 400), ("a%5Cb.js", 400), ("a%00b.js", 400),
    ("assets%2Fapp.js", 200), ("assets//app.js", 200), ("assets", 200), ("missing.js", 404),
])
def test_tails(make_ui, store, tail, status):
    digest = publish(store, TENANT, EXT, FILES)
    r = get(make_ui(), digest, tail)
    assert r.status_code == status
    if status == 404:
        assert r.data == b"" and r.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("content_hash", ["sha256:", "md5:abcd", "SHA256:" + "a" * 64, "a" * 64, "sha256:xyz",
                                          "sha256:" + "a" * 63 + "g"])
def test_bad_content_hash(make_ui, content_hash):
    r = make_ui().get(f"/ext-ui/{EXT}/{content_hash}/index.html", headers={"x-tenant-id": TENANT})
    assert r.status_code == 400 and r.data == b"invalid content hash"
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8" and r.headers["Cache-Control"] == "no-store"


def test_short_hex_is_an_extract_failure_as_in_the_reference(make_ui):
    r = make_ui().get(f"/ext-ui/{EXT}/sha256:ABC/index.html")
    assert r.status_code == 500 and r.get_json() == {"code": "extract_failed"}


def test_encoded_hash_and_alias_route(make_ui, store):
    digest = publish(store, TENANT, EXT, FILES)
    client = make_ui()
    assert client.get(f"/ext-ui/{EXT}/sha256%3A{digest.upper()}/index.html?tenant={TENANT}").data == INDEX
    assert client.get(f"/runner/ext-ui/{EXT}/sha256:{digest}/index.html?tenant={TENANT}").data == INDEX


def test_head_has_the_get_headers_and_no_body(make_ui, store):
    digest = publish(store, TENANT, EXT, FILES)
    client = make_ui()
    full = get(client, digest, "assets/app.js")
    head = client.head(url(digest, "assets/app.js"), headers={"x-tenant-id": TENANT})
    assert head.status_code == 200 and head.data == b""
    assert dict(head.headers) == dict(full.headers)


def test_wrong_method_is_405(make_ui, store):
    digest = publish(store, TENANT, EXT, FILES)
    assert make_ui().post(url(digest)).status_code == 405


# --- validators, encodings, ranges ----------------------------------------------------------

def test_precompressed_variants_and_304_per_encoding(make_ui, store):
    digest = publish(store, TENANT, EXT, FILES)
    client = make_ui()
    plain = get(client, digest, "assets/app.js")
    br = get(client, digest, "assets/app.js", **{"Accept-Encoding": "gzip, deflate, br"})
    gz = get(client, digest, "assets/app.js", **{"Accept-Encoding": "gzip;q=1, br;q=0"})
    assert br.headers["Content-Encoding"] == "br" and brotli.decompress(br.data) == APP_JS
    assert gz.headers["Content-Encoding"] == "gzip" and gzip.decompress(gz.data) == APP_JS
    assert "Content-Encoding" not in plain.headers and plain.data == APP_JS
    tags = {plain.headers["ETag"], br.headers["ETag"], gz.headers["ETag"]}
    assert len(tags) == 3 and br.headers["ETag"].endswith('-br"')
    for r in (plain, br, gz):
        assert r.headers["Vary"] == "Accept-Encoding" and r.headers["Content-Length"] == str(len(r.data))
    assert get(client, digest, "assets/app.js", **{"Accept-Encoding": "br",
                                                   "If-None-Match": br.headers["ETag"]}).status_code == 304
    assert get(client, digest, "assets/app.js", **{"If-None-Match": br.headers["ETag"]}).status_code == 200
    assert get(client, digest, "assets/app.js", **{"If-None-Match": f'"x", {plain.headers["ETag"]}'}).status_code == 304
    assert get(client, digest, "assets/app.js", **{"If-None-Match": "*"}).status_code == 304
    weak = "W/" + plain.headers["ETag"]
    assert get(client, digest, "assets/app.js", **{"If-None-Match": weak}).status_code == 200


@pytest.mark.parametrize("tail, headers, status", [
    ("index.html", {}, 200),
    ("assets/app.js", {"Accept-Encoding": "br"}, 200),
    ("assets/app.js", {"Range": "bytes=0-9"}, 206),
    ("assets/app.js", {"Range": "bytes=999999-"}, 416),
    ("assets/missing.js", {}, 404),
    ("a/../b.js", {}, 400),
    ("x.exe", {}, 400),
])
def test_every_answer_allows_any_origin(make_ui, store, tail, headers, status):
    """Module scripts from an opaque-origin iframe are CORS requests with ``Origin: null``."""
    digest = publish(store, TENANT, EXT, FILES)
    client = make_ui()
    r = get(client, digest, tail, Origin="null", **headers)
    assert r.status_code == status
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in r.headers
    assert "Origin" not in r.headers.get("Vary", "")  # one constant value: caches keep one copy
    if status == 200:
        again = get(client, digest, tail, Origin="null", **{**headers, "If-None-Match": r.headers["ETag"]})
        assert again.status_code == 304 and again.headers["Access-Control-Allow-Origin"] == "*"
    # a bad hash and a strict-mode refusal too
    assert client.get(f"/ext-ui/{EXT}/md5:x/index.html").headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("attached, setting, encoded", [
    (False, "auto", True), (True, "auto", False), (False, "off", False), (True, "on", True)])
def test_compression_policy(make_ui, store, registry, tmp_path, attached, setting, encoded):
    """Alga's /runner proxy decodes br/gzip but keeps Content-Encoding: off when attached unless forced."""
    digest = publish(store, TENANT, EXT, FILES)
    client = make_ui(ui_compression=setting, **({"registry_base_url": registry.base} if attached else {}))
    r = get(client, digest, "assets/app.js", **{"Accept-Encoding": "gzip, deflate, br, zstd"})
    assert r.status_code == 200
    variants = list((tmp_path / "cache").glob(f"**/{digest}/precompressed/assets/app.js.br"))
    if encoded:
        assert r.headers["Content-Encoding"] == "br" and r.headers["Vary"] == "Accept-Encoding"
        assert variants
    else:
        assert r.data == APP_JS and r.headers["Content-Length"] == str(len(APP_JS))
        assert "Content-Encoding" not in r.headers and "Vary" not in r.headers
        assert not variants  # nothing compressed at extraction either


@pytest.mark.parametrize("raw, expected", [("on", "on"), ("OFF", "off"), ("auto", "auto"), ("gzip", "auto")])
def test_compression_setting(raw, expected):
    from settings import Settings

    assert Settings.from_env({"EXT_UI_COMPRESSION": raw}).static.ui_compression == expected


@pytest.mark.parametrize("range_header, status, content_range, body", [
    ("bytes=0-9", 206, f"bytes 0-9/{len(APP_JS)}", APP_JS[:10]),
    ("bytes=10-", 206, f"bytes 10-{len(APP_JS) - 1}/{len(APP_JS)}", APP_JS[10:]),
    ("bytes=-5", 206, f"bytes {len(APP_JS) - 5}-{len(APP_JS) - 1}/{len(APP_JS)}", APP_JS[-5:]),
    ("bytes=0-999999", 206, f"bytes 0-{len(APP_JS) - 1}/{len(APP_JS)}", APP_JS),
    (f"bytes={len(APP_JS)}-", 416, f"bytes */{len(APP_JS)}", b""),
    ("bytes=0-1,5-6", 200, None, APP_JS),
    ("items=0-1", 200, None, APP_JS),
    ("bytes=5-1", 200, None, APP_JS),
])
def test_ranges(make_ui, store, range_header, status, content_range, body):
    digest = publish(store, TENANT, EXT, FILES)
    r = get(make_ui(), digest, "assets/app.js", Range=range_header, **{"Accept-Encoding": "br"})
    assert r.status_code == status and r.data == body
    assert r.headers.get("Content-Range") == content_range
    if status == 206:
        assert "Content-Encoding" not in r.headers and "immutable" in r.headers["Cache-Control"]
    if status == 416:
        assert r.headers["Cache-Control"] == "no-store"


# --- tenants, UI root, eviction -------------------------------------------------------------

def test_two_tenants_share_one_content_hash(make_ui, store, registry):
    digest = publish(store, TENANT, EXT, FILES)
    assert publish(store, "tenant-b", EXT, FILES) == digest
    registry.valid |= {(TENANT, EXT, f"sha256:{digest}"), ("tenant-b", EXT, f"sha256:{digest}")}
    client = make_ui(static_strict_validation=True, registry_base_url=registry.base)
    (store / "tenants" / "tenant-b").rename(store.parent / "moved")  # tenant-b's copy is not even needed
    assert get(client, digest).status_code == 200
    assert get(client, digest, tenant="tenant-b").data == INDEX
    assert get(client, digest, tenant="tenant-c").status_code == 404  # cached, but not installed for c


def test_tenant_from_query_then_hint(make_ui, store):
    digest = publish(store, TENANT, EXT, FILES)
    client = make_ui()
    assert client.get(url(digest) + f"?tenant={TENANT}&path=/x").status_code == 200
    other = publish(store, TENANT, EXT, {**FILES, "ui/extra.css": b"a{}"})
    assert client.get(url(other) + f"?tenant={TENANT}").status_code == 200
    assert client.get(url(other, "extra.css")).status_code == 200  # tenant remembered for (ext, hash)



def test_rejected_tenant_does_not_replace_a_validated_hint(make_ui, store, registry):
    digest = publish(store, TENANT, EXT, FILES)
    registry.valid.add((TENANT, EXT, f"sha256:{digest}"))
    client = make_ui(static_strict_validation=True, registry_base_url=registry.base)
    assert client.get(url(digest) + f"?tenant={TENANT}").status_code == 200
    assert client.get(url(digest) + "?tenant=tenant-b").status_code == 404
    assert client.get(url(digest, "assets/app.js")).data == APP_JS  # still served as tenant-a

def test_tenant_from_host_lookup(make_ui, store, registry):
    digest = publish(store, TENANT, EXT, FILES)
    registry.hosts["t8--e8.apps.example.com"] = {"tenant_id": TENANT, "extension_id": EXT,
                                                  "content_hash": f"sha256:{digest}"}
    client = make_ui(registry_base_url=registry.base)
    r = client.get(url(digest), headers={"Host": "t8--e8.apps.example.com:8443"})
    assert r.status_code == 200
    assert ("/api/installs/lookup-by-host", "t8--e8.apps.example.com") in [(p, q.get("host"))
                                                                           for p, q, _ in registry.calls]


def test_spa_fallback_only_without_extension(make_ui, store):
    digest = publish(store, TENANT, EXT, FILES)
    client = make_ui()
    for tail in ("dashboard", "a/b/c", "assets"):
        assert get(client, digest, tail).data == INDEX
    r = get(client, digest, "assets/missing.js")
    assert r.status_code == 404 and r.data == b""


def test_ui_dist_entry_becomes_the_root(make_ui, store):
    manifest = json.dumps({"name": "x", "ui": {"type": "iframe", "entry": "ui/dist/index.html"}}).encode()
    digest = publish(store, TENANT, EXT, {"manifest.json": manifest, "ui/dist/index.html": INDEX,
                                          "ui/dist/assets/app.js": APP_JS, "dist/main.wasm": b"\0asm"})
    client = make_ui()
    assert get(client, digest).data == INDEX
    assert get(client, digest, "client/route").data == INDEX
    assert get(client, digest, "assets/app.js").data == APP_JS
    no_manifest = publish(store, TENANT, EXT, {"ui/dist/index.html": INDEX, "dist/main.wasm": b"\0asm"})
    assert get(client, no_manifest).status_code == 404  # reference behaviour without a manifest entry


def test_eviction_while_requests_run(make_ui, store):
    digests = [publish(store, TENANT, EXT, {**FILES, "ui/pad.png": bytes([i]) * 40_000}) for i in range(4)]
    # about one bundle at a time; nothing kept in memory, so every request goes through the cache
    client = make_ui(cache_max_bytes=100_000, static_memory_bytes=0)
    failures, stop = [], threading.Event()

    def hammer():
        while not stop.is_set():
            r = get(client, digests[0], "assets/app.js")
            if r.status_code != 200 or r.data != APP_JS:
                failures.append(r.status_code)

    workers = [threading.Thread(target=hammer) for _ in range(3)]
    for w in workers:
        w.start()
    for _ in range(3):
        for d in digests[1:]:
            assert get(client, d, "pad.png").status_code == 200
    stop.set()
    for w in workers:
        w.join(10)
    assert failures == []
    assert svc(client.application).bundles.evictions >= 6


def test_small_files_are_answered_from_memory(make_ui, store, tmp_path):
    """Once read, a small file is answered from memory: its folder is content-addressed, so the copy
    cannot go stale, and the bundle cache is not touched (here: the extracted folder is gone)."""
    digest = publish(store, TENANT, EXT, FILES)
    client = make_ui()
    assert get(client, digest, "assets/app.js").data == APP_JS
    etag = get(client, digest, "assets/app.js").headers["ETag"]
    shutil.rmtree(tmp_path / "cache" / digest)
    shutil.rmtree(store)
    r = get(client, digest, "assets/app.js", Range="bytes=0-6")
    assert r.status_code == 206 and r.data == APP_JS[:7]
    assert get(client, digest, "assets/app.js", **{"If-None-Match": etag}).status_code == 304
    assert get(client, digest, "assets/app.js").data == APP_JS
    assert get(client, digest, "nope.js").status_code == 404  # the index is in memory too
    assert get(client, digest, "index.html").status_code == 500  # never read: needs the bundle


def test_memory_is_bounded_by_bytes(make_ui, store, tmp_path):
    digest = publish(store, TENANT, EXT, FILES)
    client = make_ui(static_memory_bytes=len(APP_JS) + 10)  # room for app.js, not for both files
    assert get(client, digest, "index.html", **{"Accept-Encoding": "identity"}).data == INDEX
    assert get(client, digest, "assets/app.js", **{"Accept-Encoding": "identity"}).data == APP_JS  # evicts index
    shutil.rmtree(tmp_path / "cache" / digest)
    shutil.rmtree(store)
    assert get(client, digest, "assets/app.js", **{"Accept-Encoding": "identity"}).data == APP_JS
    assert get(client, digest, "index.html", **{"Accept-Encoding": "identity"}).status_code == 500


# --- GET / and POST /warmup -----------------------------------------------------------------

def test_host_dispatch(make_ui, registry):
    registry.hosts["t8--e8.apps.example.com"] = {"tenant_id": "t 1", "extension_id": EXT, "content_hash": "sha256:ab"}
    registry.hosts["broken.example.com"] = {"tenant_id": 1}
    client = make_ui(registry_base_url=registry.base)
    r = client.get("/", headers={"Host": "t8--e8.apps.example.com:443"})
    assert r.status_code == 307 and r.headers["Cache-Control"] == "no-store"
    assert r.headers["Location"] == f"/ext-ui/{EXT}/sha256:ab/index.html?tenant=t+1&extensionId={EXT}"
    path, query, key = registry.calls[-1]
    assert (path, query["host"], key) == ("/api/installs/lookup-by-host", "t8--e8.apps.example.com", "test-key")
    assert client.get("/", headers={"Host": "unknown.example.com"}).status_code == 404
    assert client.get("/", headers={"Host": "broken.example.com"}).status_code == 502
    assert client.get("/", headers={"Host": ""}).status_code == 400
    assert make_ui().get("/").status_code == 503  # no registry configured
    assert make_ui(registry_base_url="http://127.0.0.1:9").get("/").status_code == 502


@pytest.mark.parametrize("kwargs, status", [
    ({"data": "{}", "content_type": "text/plain"}, 415),
    ({"data": "{not json", "content_type": "application/json"}, 400),
    ({"json": {"other": 1}}, 422),
    ({"json": {"content_hash": 5}}, 422),
    ({"json": ["content_hash"]}, 422),
    ({"json": {"content_hash": "sha256:ab", "extra": True}}, 400),
])
def test_warmup(make_ui, kwargs, status):
    r = make_ui().post("/warmup", **kwargs)
    assert r.status_code == status and r.headers["Cache-Control"] == "no-store"
    if status == 400 and "json" in kwargs:
        assert r.data == b"warmup unsupported without tenant + extension context"


def test_standalone_default_tenant(make_ui, store):
    digest = publish(store, "default-t", EXT, FILES)
    assert make_ui(default_tenant="default-t").get(url(digest)).data == INDEX


def test_over_a_real_socket(make_ui, store):
    """Through a real HTTP server: lengths, HEAD, 304 and ranges as a browser sees them."""
    import requests
    from werkzeug.serving import make_server

    big = bytes(range(256)) * 2048  # 512 KiB: sent from the open file, not read into memory
    digest = publish(store, TENANT, EXT, {**FILES, "ui/big.png": big})
    server = make_server("127.0.0.1", 0, make_ui().application, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/ext-ui/{EXT}/sha256:{digest}/"
    try:
        with requests.Session() as s:
            s.headers["x-tenant-id"] = TENANT
            r = s.get(base + "big.png")
            assert r.status_code == 200 and r.content == big and r.headers["Content-Length"] == str(len(big))
            head = s.head(base + "index.html", headers={"Accept-Encoding": "identity"})
            assert head.status_code == 200 and head.headers["Content-Length"] == str(len(INDEX))
            r = s.get(base + "index.html", headers={"Accept-Encoding": "gzip"})
            assert r.headers["Content-Encoding"] == "gzip" and r.content == INDEX  # requests decodes it
            assert s.get(base + "index.html", headers={"If-None-Match": r.headers["ETag"],
                                                       "Accept-Encoding": "gzip"}).status_code == 304
            part = s.get(base + "big.png", headers={"Range": "bytes=1000-1999"})
            assert part.status_code == 206 and part.content == big[1000:2000]
            assert s.get(base + "nope.js").status_code == 404
    finally:
        server.shutdown()
