"""Bundle stores: a local folder and a plain HTTP base (a real server on loopback)."""
from __future__ import annotations

import hashlib
import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from storage.bundles.settings import BundleSettings
from storage.bundles.stores import (
    BundleNotFound,
    BundleStoreError,
    HttpBundleStore,
    LocalBundleStore,
    S3BundleStore,
    StoreConfigError,
    bundle_key,
    open_bundle_store,
)

KEY = bundle_key("t1", "e1", "ab" * 32)


class BundleServer:
    """A loopback HTTP server serving ``objects`` (path -> bytes), counting GETs; PUT stores, HEAD / is 200."""

    def __init__(self):
        self.objects: dict[str, bytes] = {}
        self.gets: list[str] = []
        self.status_override: int | None = None
        self.release = threading.Event()  # cleared: GETs wait (only those in ``slow`` when it is not empty)
        self.release.set()
        self.slow: set[str] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.send_response(200 if self.path == "/" else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                server.gets.append(self.path)
                if not server.slow or self.path in server.slow:
                    server.release.wait(10)
                body = server.objects.get(self.path)
                status = server.status_override or (200 if body is not None else 404)
                body = body if status == 200 else b"no"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self):
                server.objects[self.path] = self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def put(self, key: str, data: bytes) -> None:
        self.objects[f"/{key}"] = data

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def bundle_server():
    server = BundleServer()
    yield server
    server.close()


def settings(**overrides) -> BundleSettings:
    return BundleSettings(**overrides)


def test_bundle_key_layout():
    assert bundle_key("t", "e", "ff") == "tenants/t/extensions/e/sha256/ff/bundle.tar.zst"
    assert bundle_key("", "e", "ff") == "tenants//extensions/e/sha256/ff/bundle.tar.zst"  # non-strict, no tenant
    for bad in ("..", ".", "a/b", "a\\b"):
        with pytest.raises(BundleNotFound):
            bundle_key(bad, "e", "ff")


@pytest.mark.parametrize("base, kind", [
    ("/srv/bundles", LocalBundleStore),
    ("relative/bundles", LocalBundleStore),
    ("file:///srv/bundles", LocalBundleStore),
    ("http://minio:9000/extensions", HttpBundleStore),
    ("https://cdn.example.com/b/", HttpBundleStore),
])
def test_open_bundle_store_picks_the_store(base, kind):
    assert type(open_bundle_store(settings(bundle_store_base=base))) is kind


def test_s3_store_when_credentials_are_set():
    store = open_bundle_store(settings(bundle_store_base="http://minio:9000/extensions/pre/fix/",
                                       s3_access_key="ak", s3_secret_key="sk", s3_region="eu-west-1"))
    assert isinstance(store, S3BundleStore)
    assert (store.endpoint, store.bucket, store.prefix) == ("http://minio:9000", "extensions", "pre/fix/")
    assert "sk" not in store.describe() and "ak" not in store.describe()


@pytest.mark.parametrize("base", ["", "   ", "ftp://host/x", "http:///nohost", "s3://bucket"])
def test_bad_base_is_a_config_error(base):
    with pytest.raises(StoreConfigError):
        open_bundle_store(settings(bundle_store_base=base))


def test_s3_without_bucket_is_a_config_error():
    with pytest.raises(StoreConfigError):
        open_bundle_store(settings(bundle_store_base="http://minio:9000/", s3_access_key="a", s3_secret_key="b"))


def test_local_fetch_put_probe(tmp_path):
    store = LocalBundleStore(tmp_path / "store")
    assert store.probe() == "ok" and (tmp_path / "store").is_dir()
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 100_000)
    store.put(KEY, src)
    assert store.probe() == "ok"
    out = io.BytesIO()
    assert store.fetch(KEY, out, 1 << 20) == hashlib.sha256(b"x" * 100_000).hexdigest()
    assert out.getvalue() == b"x" * 100_000
    assert not [p for p in (tmp_path / "store").rglob("*.tmp")]


def test_local_probe_when_the_folder_cannot_be_created(tmp_path):
    (tmp_path / "file").write_text("")
    assert LocalBundleStore(tmp_path / "file" / "store").probe() == "bundle_store_unreachable"


def test_local_missing_and_too_large(tmp_path):
    store = LocalBundleStore(tmp_path)
    with pytest.raises(BundleNotFound, match="404 Not Found"):
        store.fetch(KEY, io.BytesIO(), 100)
    (tmp_path / "k").write_bytes(b"y" * 101)
    with pytest.raises(BundleStoreError, match="EXT_MAX_ARCHIVE_BYTES"):
        store.fetch("k", io.BytesIO(), 100)
    with pytest.raises(BundleNotFound):
        store.fetch("../k", io.BytesIO(), 100)


def test_http_fetch_streams_and_hashes(bundle_server):
    data = bytes(range(256)) * 1000
    bundle_server.put(KEY, data)
    store = HttpBundleStore(bundle_server.base + "/", 5)
    out = io.BytesIO()
    assert store.fetch(KEY, out, 1 << 20) == hashlib.sha256(data).hexdigest()
    assert out.getvalue() == data
    assert bundle_server.gets == [f"/{KEY}"]


def test_http_errors(bundle_server):
    store = HttpBundleStore(bundle_server.base, 5)
    with pytest.raises(BundleNotFound) as e:
        store.fetch(KEY, io.BytesIO(), 100)
    assert e.value.reason == "verify_archive_sha256 fetch failed: 404 Not Found"
    bundle_server.put(KEY, b"z" * 200)
    with pytest.raises(BundleStoreError, match="EXT_MAX_ARCHIVE_BYTES"):
        store.fetch(KEY, io.BytesIO(), 100)
    bundle_server.status_override = 503
    with pytest.raises(BundleStoreError, match="503 Service Unavailable") as e:
        store.fetch(KEY, io.BytesIO(), 1000)
    assert not isinstance(e.value, BundleNotFound)


def test_http_timeout(bundle_server):
    bundle_server.put(KEY, b"slow")
    bundle_server.release.clear()
    with pytest.raises(BundleStoreError, match="timed out"):
        HttpBundleStore(bundle_server.base, 0.3).fetch(KEY, io.BytesIO(), 100)


def test_http_put_and_probe(bundle_server, tmp_path):
    store = HttpBundleStore(bundle_server.base, 5)
    src = tmp_path / "b"
    src.write_bytes(b"payload")
    store.put(KEY, src)
    assert bundle_server.objects[f"/{KEY}"] == b"payload"
    assert store.probe() == "ok"
    assert HttpBundleStore("http://127.0.0.1:9", 5).probe() == "bundle_store_unreachable"


def test_http_server_down():
    with pytest.raises(BundleStoreError, match="fetch failed"):
        HttpBundleStore("http://127.0.0.1:9", 2).fetch(KEY, io.BytesIO(), 100)
