"""The S3 store (SigV4, path-style) against a real moto server on loopback, and the cache on top of it."""
from __future__ import annotations

import hashlib
import io

import boto3
import pytest
from helpers import free_port
from moto.server import ThreadedMotoServer

from storage.bundles.archive import bundle_bytes
from storage.bundles.cache import ArchiveHashMismatch, BundleCache
from storage.bundles.settings import BundleSettings
from storage.bundles.stores import BundleNotFound, BundleStoreError, S3BundleStore, bundle_key, open_bundle_store

BUCKET = "extensions"
CREDS = {"s3_access_key": "minioadmin", "s3_secret_key": "minioadmin", "s3_region": "us-east-1"}


@pytest.fixture(scope="module")
def moto_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="minioadmin",
                 aws_secret_access_key="minioadmin").create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def s3_settings(base: str, tmp_path, **overrides) -> BundleSettings:
    return BundleSettings(bundle_store_base=base, cache_root=str(tmp_path / "cache"),
                             bundle_fetch_timeout_ms=3000, **CREDS, **overrides)


def test_put_then_fetch_with_prefix(moto_endpoint, tmp_path):
    store = open_bundle_store(s3_settings(f"{moto_endpoint}/{BUCKET}/some/prefix", tmp_path))
    assert isinstance(store, S3BundleStore)
    src = tmp_path / "b.bin"
    src.write_bytes(b"q" * 300_000)
    key = bundle_key("t", "e", "cd" * 32)
    store.put(key, src)
    out = io.BytesIO()
    assert store.fetch(key, out, 1 << 20) == hashlib.sha256(b"q" * 300_000).hexdigest()
    assert out.getvalue() == b"q" * 300_000
    assert store.probe() == "ok"
    raw = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1", aws_access_key_id="minioadmin",
                       aws_secret_access_key="minioadmin")
    assert raw.head_object(Bucket=BUCKET, Key=f"some/prefix/{key}")["ContentLength"] == 300_000


def test_missing_object_is_not_found(moto_endpoint, tmp_path):
    store = open_bundle_store(s3_settings(f"{moto_endpoint}/{BUCKET}", tmp_path))
    with pytest.raises(BundleNotFound) as e:
        store.fetch(bundle_key("t", "e", "00" * 32), io.BytesIO(), 100)
    assert e.value.reason == "verify_archive_sha256 fetch failed: 404 Not Found"


def test_too_large(moto_endpoint, tmp_path):
    store = open_bundle_store(s3_settings(f"{moto_endpoint}/{BUCKET}", tmp_path))
    src = tmp_path / "big"
    src.write_bytes(b"b" * 5000)
    store.put("big", src)
    with pytest.raises(BundleStoreError, match="EXT_MAX_ARCHIVE_BYTES"):
        store.fetch("big", io.BytesIO(), 1000)


def test_probe_reuses_one_short_timeout_client(moto_endpoint, tmp_path, monkeypatch):
    store = open_bundle_store(s3_settings(f"{moto_endpoint}/{BUCKET}", tmp_path))
    made = []
    real_make = store._make
    monkeypatch.setattr(store, "_make", lambda timeout_s, attempts: made.append((timeout_s, attempts))
                        or real_make(timeout_s, attempts))
    assert [store.probe() for _ in range(3)] == ["ok"] * 3
    assert made == [(1.0, 1)]


def test_server_down(tmp_path):
    store = open_bundle_store(s3_settings(f"http://127.0.0.1:{free_port()}/{BUCKET}", tmp_path))
    with pytest.raises(BundleStoreError, match="fetch failed"):
        store.fetch("k", io.BytesIO(), 100)
    assert store.probe() == "bundle_store_unreachable"


def test_cache_over_s3_verifies_the_hash_and_leaves_no_temp_files(moto_endpoint, tmp_path):
    cfg = s3_settings(f"{moto_endpoint}/{BUCKET}", tmp_path)
    store = open_bundle_store(cfg)
    good, good_hash = bundle_bytes({"ui/index.html": b"<html>s3</html>", "dist/main.wasm": b"\0asm"})
    src = tmp_path / "good.tar.zst"
    src.write_bytes(good)
    store.put(bundle_key("t", "e", good_hash), src)
    wrong_hash = "ee" * 32
    store.put(bundle_key("t", "e", wrong_hash), src)  # bytes whose hash is not the key's

    cache = BundleCache(cfg)
    cached = cache.ensure("t", "e", good_hash)
    assert (cached.root / "ui" / "index.html").read_bytes() == b"<html>s3</html>"
    with pytest.raises(ArchiveHashMismatch, match=f"expected {wrong_hash}, got {good_hash}"):
        cache.ensure("t", "e", wrong_hash)
    assert not (tmp_path / "cache" / wrong_hash).exists()
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []
