"""The content-addressed bundle cache: fetch, verify, extract once per hash (reference §2.3-2.6).

``BundleCache.ensure`` returns an extracted bundle, downloading it at most once per
hash however many threads, greenlets or processes ask at the same time. Failures
are not remembered: the next call tries again (DECISIONS 12). ``use`` pins a bundle
so ``EXT_CACHE_MAX_BYTES`` eviction leaves it alone (DECISIONS 10).
"""
from __future__ import annotations

import io
import logging
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from service import metrics
from storage.bundles.cache_dir import HEX, CacheDir, remove_path, tree_bytes
from storage.bundles.extract import ExtractError, ExtractLimits, extract_bundle
from storage.bundles.settings import BundleSettings
from storage.bundles.signing import (MAX_SIGNATURE_BYTES, SIGNATURE_FILE, SignatureRejected, TrustBundle,
                                     signature_key)
from storage.bundles.stores import (FETCH_FAILED, BundleError, BundleNotFound, BundleStore, StoreConfigError,
                                    bundle_key, open_bundle_store)

log = logging.getLogger(__name__)


class ArchiveHashMismatch(BundleError):
    def __init__(self, expected: str, actual: str):
        super().__init__(f"archive hash mismatch: expected {expected}, got {actual}")
        self.expected, self.actual = expected, actual


class ExtractFailed(BundleError):
    """The archive was fetched and verified but could not be unpacked."""


class CachedBundle:
    """An extracted bundle."""

    __slots__ = ("hash", "root", "bundle_dir", "wasm_path", "compiled_dir", "bytes", "trusted")

    def __init__(self, hex_hash: str, root: Path, size: int, trusted: bool = False):
        self.hash = hex_hash
        self.root = root
        self.bundle_dir = root / "bundle"
        self.wasm_path = self.bundle_dir / "dist" / "main.wasm"
        self.compiled_dir = root / "compiled"
        self.bytes = size
        self.trusted = trusted  # its signature verified in this process (SIGNING_TRUST_BUNDLE)


class BundleCache:
    """:param on_extract: called with the temporary bundle folder before it is renamed into place
    (static_cache builds its UI index there, so the index is part of the atomic folder)."""

    def __init__(self, settings: BundleSettings, store: BundleStore | None = None,
                 on_extract: Callable[[Path], None] | None = None):
        self.settings = settings
        self.dir = CacheDir(settings.cache_root)
        self.on_extract = on_extract
        self.limits = ExtractLimits.from_settings(settings)
        self.trust = TrustBundle.load(settings.signing_trust_bundle) if settings.signing_trust_bundle else None
        self._store = store
        self._store_lock = threading.Lock()
        self._ready: dict[str, CachedBundle] = {}
        self._count_lock = threading.Lock()
        self._accounted: dict[str, frozenset | None] = {}  # hex -> compiled/ as last measured
        self.hits = self.misses = self.evictions = self.bytes_evicted = 0

    @property
    def store(self) -> BundleStore:
        """Built on first use, so a bad BUNDLE_STORE_BASE fails requests, not start-up."""
        with self._store_lock:
            if self._store is None:
                self._store = open_bundle_store(self.settings)
            return self._store

    def ensure(self, tenant: str, extension: str, hash_hex: str) -> CachedBundle:
        hex_hash = hash_hex.lower()
        if not HEX.match(hex_hash):
            raise BundleNotFound(f"{FETCH_FAILED}: not a sha256 hex digest: {hash_hex[:80]!r}")
        cached = self._hit(hex_hash)
        if cached is not None:
            self._count(hits=1)
            return self._trusted(tenant, extension, cached)
        try:
            self.dir.prepare()
        except OSError as e:
            raise ExtractFailed(f"cache root not writable: {e}") from e
        with self.dir.hash_lock(hex_hash):
            cached = self._hit(hex_hash)
            if cached is not None:  # another thread or process just finished it
                self._count(hits=1)
                return self._trusted(tenant, extension, cached)
            self._count(misses=1)
            cached = self._fill(tenant, extension, hex_hash)
        self._evict(keep=hex_hash)
        return cached

    def is_cached(self, hash_hex: str) -> bool:
        """The bundle is extracted here already (``ensure`` will not fetch it)."""
        return HEX.match(hash_hex.lower()) is not None and self._hit(hash_hex.lower()) is not None

    def _trusted(self, tenant: str, extension: str, cached: CachedBundle) -> CachedBundle:
        """``cached`` once its signature verifies (always, without SIGNING_TRUST_BUNDLE). Checked once per
        process: the copy kept in the bundle folder first, then the store's (signed or re-signed since)."""
        if self.trust is None or cached.trusted:
            return cached
        local = cached.root / SIGNATURE_FILE
        try:
            self.trust.verify(cached.hash, local.read_bytes())
        except (OSError, SignatureRejected):
            document = self._signature(self.store, tenant, extension, cached.hash)
            tmp = local.with_name(f"{SIGNATURE_FILE}.{os.getpid()}.tmp")
            tmp.write_bytes(document)
            os.replace(tmp, local)
        cached.trusted = True
        return cached

    def _signature(self, store: BundleStore, tenant: str, extension: str, hex_hash: str) -> bytes:
        """The store's signature for the bundle, verified; SignatureRejected otherwise."""
        key = signature_key(bundle_key(tenant, extension, hex_hash))
        out = io.BytesIO()
        try:
            store.fetch(key, out, MAX_SIGNATURE_BYTES)
        except BundleNotFound:
            raise SignatureRejected(f"no signature beside the bundle in the store ({key}); "
                                    "sign it with: flask ext sign") from None
        except BundleError as e:
            raise SignatureRejected(f"cannot fetch {key}: {e.reason}") from None
        self.trust.verify(hex_hash, out.getvalue())
        return out.getvalue()

    @contextmanager
    def use(self, hash_hex: str) -> Iterator[None]:
        """Pin a bundle while a request uses it. Pin first, then ``ensure``, to be safe from eviction."""
        hex_hash = hash_hex.lower()
        self.dir.prepare()
        self.dir.pin(hex_hash)
        try:
            yield
        finally:
            self.dir.unpin(hex_hash)

    def account(self, hex_hash: str) -> None:
        """Count a bundle's compiled artifacts (written after extraction) against EXT_CACHE_MAX_BYTES
        and evict to the cap; the bundle itself is kept. Every request of a cold stampede calls this;
        the bundle is measured again (and meta.json rewritten) only when its compiled/ folder changed."""
        try:
            compiled = frozenset((e.name, e.stat().st_size)
                                 for e in os.scandir(self.dir.bundle_root(hex_hash) / "compiled"))
        except OSError:
            compiled = None
        with self._count_lock:
            if compiled is not None and self._accounted.get(hex_hash) == compiled:
                return
            self._accounted[hex_hash] = compiled
        try:
            size = self.dir.remeasure(hex_hash)
        except OSError as e:
            self._accounted.pop(hex_hash, None)
            log.warning("cannot re-measure a cached bundle", extra={"hash": hex_hash, "error": str(e)})
            return
        cached = self._ready.get(hex_hash)
        if size is not None and cached is not None:
            cached.bytes = size
        self._evict(keep=hex_hash)

    def is_writable(self) -> bool:
        return self.dir.is_writable()

    def probe_store(self) -> str:
        try:
            return self.store.probe()
        except StoreConfigError:
            return "bundle_store_unreachable"

    def _count(self, **deltas: int) -> None:
        with self._count_lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)
                _EXPORT[name](delta)

    def _hit(self, hex_hash: str) -> CachedBundle | None:
        cached = self._ready.get(hex_hash)
        if cached is not None and os.path.isdir(cached.root):
            self.dir.touch(hex_hash)
            return cached
        root = self.dir.bundle_root(hex_hash)
        if not root.is_dir():
            self._ready.pop(hex_hash, None)
            return None
        meta = self.dir.read_meta(hex_hash)  # extracted by another process, or before a restart
        if meta is None:
            return None
        cached = self._ready.setdefault(hex_hash, CachedBundle(hex_hash, root, int(meta.get("bytes", 0))))
        self.dir.touch(hex_hash)
        return cached

    def _fill(self, tenant: str, extension: str, hex_hash: str) -> CachedBundle:
        started = time.monotonic()
        store = self.store
        key = bundle_key(tenant, extension, hex_hash)
        if self.dir.bundle_root(hex_hash).exists():  # a folder we did not write (no meta.json)
            self.dir.discard(hex_hash, only_idle=False)
        archive, work = self.dir.temp_paths(hex_hash)
        try:
            try:
                with open(archive, "wb") as f:
                    actual = store.fetch(key, f, self.settings.max_archive_bytes)
                if actual != hex_hash:
                    raise ArchiveHashMismatch(hex_hash, actual)
                signature = None if self.trust is None else self._signature(store, tenant, extension, hex_hash)
                meta = _offload(self._unpack, archive, work)
                if signature is not None:
                    (work / SIGNATURE_FILE).write_bytes(signature)
                self.dir.commit(hex_hash, work, meta)
            except ExtractError as e:
                raise ExtractFailed(e.reason) from None
            except OSError as e:
                raise ExtractFailed(f"cannot write the cache: {e}") from e
        except BundleError as e:
            log.warning("bundle fetch failed", extra={"hash": hex_hash, "key": key, "store": store.describe(),
                                                       "reason": e.reason})
            raise
        finally:
            remove_path(archive)
            remove_path(work)
        log.info("bundle extracted", extra={"hash": hex_hash, "key": key, "files": meta["files"],
                                            "bytes": meta["bytes"], "ms": round((time.monotonic() - started) * 1000)})
        cached = CachedBundle(hex_hash, self.dir.bundle_root(hex_hash), meta["bytes"], trusted=True)
        self._ready[hex_hash] = cached
        return cached

    def _unpack(self, archive: Path, work: Path) -> dict:
        result = extract_bundle(archive, work, self.limits)
        os.unlink(archive)
        (work / "compiled").mkdir()
        if self.on_extract is not None:
            try:
                self.on_extract(work)
            except Exception as e:
                raise ExtractError(f"indexing failed: {type(e).__name__}: {e}") from e
        return {"files": result.files, "bytes": tree_bytes(work)}

    def _evict(self, keep: str) -> None:
        cap = self.settings.cache_max_bytes
        if not cap:
            return
        evicted, left = self.dir.evict(cap, keep)
        for hex_hash, size in evicted:
            self._ready.pop(hex_hash, None)
            self._accounted.pop(hex_hash, None)
            self._count(evictions=1, bytes_evicted=size)
            log.info("bundle evicted", extra={"hash": hex_hash, "bytes": size})
        if left is not None and left > cap:
            log.warning("cache over EXT_CACHE_MAX_BYTES: the rest is in use",
                        extra={"bytes": left, "cap": cap})


# The same counts for /metrics (summed over Gunicorn processes).
_EXPORT = {
    "hits": metrics.BUNDLE_CACHE.labels("hit").inc,
    "misses": metrics.BUNDLE_CACHE.labels("miss").inc,
    "evictions": metrics.EVICTIONS.inc,
    "bytes_evicted": metrics.EVICTED_BYTES.inc,
}


def _offload(fn, *args):
    """Run CPU-bound work on a real thread under gevent, so other greenlets keep being served."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        import gevent

        return gevent.get_hub().threadpool.apply(fn, args)
    return fn(*args)


__all__ = ["BundleCache", "CachedBundle", "BundleError", "StoreConfigError", "BundleNotFound",
           "ArchiveHashMismatch", "ExtractFailed", "SignatureRejected"]
