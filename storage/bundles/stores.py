"""Bundle archive bytes by key: a local folder, a plain HTTP base, or S3/MinIO (SigV4).

``BUNDLE_STORE_BASE`` picks the store (reference §2.2, §2.4). Every store streams
the object into a file while hashing it, so an archive is never held in memory.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from http import HTTPStatus
from pathlib import Path
from typing import BinaryIO, Iterable
from urllib.parse import unquote, urlsplit

import requests

from storage.bundles.settings import BundleSettings

CHUNK = 1 << 16
FETCH_FAILED = "verify_archive_sha256 fetch failed"
PROBE_TIMEOUT_S = 1.0


class BundleError(Exception):
    """Base of every bundle failure; ``reason`` is the text callers put after their error code."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class StoreConfigError(BundleError):
    """BUNDLE_STORE_BASE is empty or unusable (the executor answers engine_init_failed)."""


class BundleStoreError(BundleError):
    """The store could not deliver the object: HTTP error, timeout, connection, size."""


class BundleNotFound(BundleStoreError):
    """No object under the key."""


def bundle_key(tenant: str, extension: str, hash_hex: str) -> str:
    for part in (tenant, extension):
        if "/" in part or "\\" in part or part in (".", ".."):
            raise BundleNotFound(f"{FETCH_FAILED}: invalid key segment {part!r}")
    return f"tenants/{tenant}/extensions/{extension}/sha256/{hash_hex}/bundle.tar.zst"


def _status_text(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


def _fail(status: int) -> BundleStoreError:
    cls = BundleNotFound if status == 404 else BundleStoreError
    return cls(f"{FETCH_FAILED}: {_status_text(status)}")


def _copy_hashing(chunks: Iterable[bytes], dest: BinaryIO, max_bytes: int, deadline: float | None = None) -> str:
    digest = hashlib.sha256()
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            raise BundleStoreError(f"{FETCH_FAILED}: archive larger than EXT_MAX_ARCHIVE_BYTES ({max_bytes})")
        if deadline is not None and time.monotonic() > deadline:
            raise BundleStoreError(f"{FETCH_FAILED}: timed out")
        digest.update(chunk)
        dest.write(chunk)
    return digest.hexdigest()


class BundleStore:
    """Interface shared by the three stores."""

    def fetch(self, key: str, dest: BinaryIO, max_bytes: int) -> str:
        """Stream the object into ``dest``; return the SHA-256 hex of the bytes written."""
        raise NotImplementedError

    def put(self, key: str, src_path: str | os.PathLike) -> None:
        raise NotImplementedError

    def probe(self) -> str:
        """``"ok"`` or ``"bundle_store_unreachable"`` (for /healthz)."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class LocalBundleStore(BundleStore):
    def __init__(self, base: str | os.PathLike):
        self.base = Path(base)

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if key.startswith("/") or any(p in (".", "..") for p in parts):
            raise BundleNotFound(f"{FETCH_FAILED}: invalid key {key!r}")
        return self.base.joinpath(*parts)

    def fetch(self, key: str, dest: BinaryIO, max_bytes: int) -> str:
        try:
            with open(self._path(key), "rb") as f:
                return _copy_hashing(iter(lambda: f.read(CHUNK), b""), dest, max_bytes)
        except FileNotFoundError:
            raise _fail(404) from None
        except OSError as e:
            raise BundleStoreError(f"{FETCH_FAILED}: {e.strerror or e}") from e

    def put(self, key: str, src_path: str | os.PathLike) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out, open(src_path, "rb") as src:
                shutil.copyfileobj(src, out, CHUNK)
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise

    def probe(self) -> str:
        try:  # created here so a fresh deployment is ready before its first upload
            self.base.mkdir(parents=True, exist_ok=True)
        except OSError:
            return "bundle_store_unreachable"
        return "ok"

    def describe(self) -> str:
        return f"folder {self.base}"


class HttpBundleStore(BundleStore):
    """Plain unauthenticated GET of ``<base>/<key>`` (reference fallback when no S3 keys are set)."""

    def __init__(self, base: str, timeout_s: float):
        self.base = base.rstrip("/")
        self.timeout_s = timeout_s
        self.session = requests.Session()

    def url(self, key: str) -> str:
        return f"{self.base}/{key.lstrip('/')}"

    def fetch(self, key: str, dest: BinaryIO, max_bytes: int) -> str:
        deadline = time.monotonic() + self.timeout_s
        try:
            with self.session.get(self.url(key), stream=True, timeout=self.timeout_s) as r:
                if not 200 <= r.status_code < 300:
                    raise _fail(r.status_code)
                length = r.headers.get("content-length", "")
                if length.isdigit() and int(length) > max_bytes:
                    raise BundleStoreError(f"{FETCH_FAILED}: archive larger than EXT_MAX_ARCHIVE_BYTES ({max_bytes})")
                return _copy_hashing(r.iter_content(CHUNK), dest, max_bytes, deadline)
        except requests.Timeout:
            raise BundleStoreError(f"{FETCH_FAILED}: timed out after {self.timeout_s:g} s") from None
        except requests.RequestException as e:
            raise BundleStoreError(f"{FETCH_FAILED}: {type(e).__name__}: {e}") from e

    def put(self, key: str, src_path: str | os.PathLike) -> None:
        with open(src_path, "rb") as f:
            r = self.session.put(self.url(key), data=f, timeout=self.timeout_s)
        if not 200 <= r.status_code < 300:
            raise BundleStoreError(f"upload failed: {_status_text(r.status_code)}")

    def probe(self) -> str:
        try:
            r = self.session.head(self.base, timeout=PROBE_TIMEOUT_S)
        except requests.RequestException:
            return "bundle_store_unreachable"
        return "ok" if 200 <= r.status_code < 300 else "bundle_store_unreachable"

    def describe(self) -> str:
        parts = urlsplit(self.base)
        return f"http {parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


class S3BundleStore(BundleStore):
    """Signed (SigV4, path-style) access to ``<endpoint>/<bucket>/<prefix><key>``."""

    def __init__(self, endpoint: str, bucket: str, prefix: str, settings: BundleSettings):
        self.endpoint, self.bucket, self.prefix = endpoint, bucket, prefix
        self.timeout_s = settings.bundle_fetch_timeout_ms / 1000
        self._credentials = (settings.s3_access_key, settings.s3_secret_key, settings.s3_region)
        self._clients: dict[str, object] = {}
        self._lock = threading.Lock()

    def client(self, purpose: str = "fetch"):
        """The client for fetches and uploads, or for ``"probe"`` a short-timeout single-try one; each built once."""
        with self._lock:  # boto3 client creation is slow and not thread-safe
            client = self._clients.get(purpose)
            if client is None:
                client = self._clients[purpose] = (self._make(PROBE_TIMEOUT_S, attempts=1) if purpose == "probe"
                                                   else self._make(self.timeout_s, attempts=2))
        return client

    def _make(self, timeout_s: float, attempts: int):
        import boto3
        from botocore.config import Config

        access, secret, region = self._credentials
        config = Config(s3={"addressing_style": "path"}, signature_version="s3v4", connect_timeout=timeout_s,
                        read_timeout=timeout_s, retries={"max_attempts": attempts, "mode": "standard"})
        return boto3.session.Session().client("s3", endpoint_url=self.endpoint, region_name=region,
                                              aws_access_key_id=access, aws_secret_access_key=secret, config=config)

    def fetch(self, key: str, dest: BinaryIO, max_bytes: int) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        deadline = time.monotonic() + self.timeout_s
        try:
            obj = self.client().get_object(Bucket=self.bucket, Key=self.prefix + key)
            body = obj["Body"]
            try:
                if obj.get("ContentLength", 0) > max_bytes:
                    raise BundleStoreError(f"{FETCH_FAILED}: archive larger than EXT_MAX_ARCHIVE_BYTES ({max_bytes})")
                return _copy_hashing(body.iter_chunks(CHUNK), dest, max_bytes, deadline)
            finally:
                body.close()
        except ClientError as e:
            raise _fail(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 500) from None
        except BotoCoreError as e:
            raise BundleStoreError(f"{FETCH_FAILED}: {e}") from e

    def put(self, key: str, src_path: str | os.PathLike) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client().upload_file(str(src_path), self.bucket, self.prefix + key)
        except (BotoCoreError, ClientError) as e:
            raise BundleStoreError(f"upload failed: {e}") from e

    def probe(self) -> str:
        try:
            self.client("probe").head_bucket(Bucket=self.bucket)
        except Exception:
            return "bundle_store_unreachable"
        return "ok"

    def describe(self) -> str:
        return f"s3 {self.endpoint}/{self.bucket}/{self.prefix}"


def open_bundle_store(settings: BundleSettings) -> BundleStore:
    """The store ``settings.bundle_store_base`` names; StoreConfigError when it names none."""
    base = (settings.bundle_store_base or "").strip()
    if not base:
        raise StoreConfigError("BUNDLE_STORE_BASE is not set")
    parts = urlsplit(base)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return LocalBundleStore(unquote(parts.path))
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise StoreConfigError(f"BUNDLE_STORE_BASE has no host: {base!r}")
        if not (settings.s3_access_key and settings.s3_secret_key):
            return HttpBundleStore(base, settings.bundle_fetch_timeout_ms / 1000)
        bucket, _, prefix = parts.path.strip("/").partition("/")
        if not bucket:
            raise StoreConfigError("BUNDLE_STORE_BASE needs the bucket as its first path segment for S3")
        prefix = f"{prefix}/" if prefix else ""
        return S3BundleStore(f"{scheme}://{parts.netloc.rpartition('@')[2]}", bucket, prefix, settings)
    if scheme:
        raise StoreConfigError(f"unsupported BUNDLE_STORE_BASE scheme {scheme!r}")
    return LocalBundleStore(base)


__all__ = ["BundleError", "StoreConfigError", "BundleStoreError", "BundleNotFound", "BundleStore",
           "LocalBundleStore", "HttpBundleStore", "S3BundleStore", "bundle_key", "open_bundle_store"]
