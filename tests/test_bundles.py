"""The content-addressed cache: single flight, failures not cached, pins and LRU eviction."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import ROOT
from test_bundle_store import BundleServer

from storage.bundles.archive import bundle_bytes
from storage.bundles.cache import ArchiveHashMismatch, BundleCache, ExtractFailed
from storage.bundles.settings import BundleSettings
from storage.bundles.stores import BundleNotFound, StoreConfigError, bundle_key


@pytest.fixture
def server():
    s = BundleServer()
    yield s
    s.close()


def cache_for(base: str, tmp_path: Path, **overrides) -> BundleCache:
    return BundleCache(BundleSettings(bundle_store_base=base, cache_root=str(tmp_path / "cache"),
                                      bundle_fetch_timeout_ms=5000, **overrides))


def publish(server: BundleServer, files: dict, tenant: str = "t", ext: str = "e") -> str:
    data, digest = bundle_bytes(files)
    server.put(bundle_key(tenant, ext, digest), data)
    return digest


def sample(n: int = 0, size: int = 1000) -> dict:
    return {"ui/index.html": b"<html>%d</html>" % n, "dist/main.wasm": os.urandom(size)}


def test_cold_then_warm_without_network(server, tmp_path):
    digest = publish(server, sample())
    cache = cache_for(server.base, tmp_path)
    first = cache.ensure("t", "e", digest)
    assert first.wasm_path.is_file()
    assert (first.root / "ui" / "index.html").read_bytes() == b"<html>0</html>"
    assert first.compiled_dir.is_dir() and os.access(first.compiled_dir, os.W_OK)
    assert first.root == tmp_path / "cache" / digest and first.bytes > 1000
    again = cache.ensure("t", "e", digest.upper())
    assert again is first
    assert len(server.gets) == 1 and (cache.hits, cache.misses) == (1, 1)
    # a new process (a new BundleCache) finds the folder on disk: still no network
    assert cache_for(server.base, tmp_path).ensure("other-tenant", "e", digest).root == first.root
    assert len(server.gets) == 1
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


def test_hash_mismatch_is_not_cached(server, tmp_path):
    data, real = bundle_bytes(sample())
    wanted = "ab" * 32
    server.put(bundle_key("t", "e", wanted), data)
    cache = cache_for(server.base, tmp_path)
    for attempt in (1, 2):
        with pytest.raises(ArchiveHashMismatch) as e:
            cache.ensure("t", "e", wanted)
        assert e.value.reason == f"archive hash mismatch: expected {wanted}, got {real}"
        assert len(server.gets) == attempt  # retried, not remembered
    assert not (tmp_path / "cache" / wanted).exists()
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []


def test_extract_failure_leaves_nothing_and_is_retried(server, tmp_path):
    junk = b"\x1f" * 1024
    digest = hashlib.sha256(junk).hexdigest()
    server.put(bundle_key("t", "e", digest), junk)
    cache = cache_for(server.base, tmp_path)
    with pytest.raises(ExtractFailed, match="not a zstd archive"):
        cache.ensure("t", "e", digest)
    assert not (tmp_path / "cache" / digest).exists()
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []
    with pytest.raises(ExtractFailed):
        cache.ensure("t", "e", digest)
    assert len(server.gets) == 2


def test_missing_bundle_then_published(server, tmp_path):
    cache = cache_for(server.base, tmp_path)
    data, digest = bundle_bytes(sample())
    with pytest.raises(BundleNotFound, match="404 Not Found"):
        cache.ensure("t", "e", digest)
    server.put(bundle_key("t", "e", digest), data)
    assert cache.ensure("t", "e", digest).wasm_path.is_file()


def test_bad_store_base_fails_requests_not_construction(tmp_path):
    cache = cache_for("ftp://nowhere", tmp_path)
    with pytest.raises(StoreConfigError):
        cache.ensure("t", "e", "ab" * 32)
    assert cache.probe_store() == "bundle_store_unreachable"
    assert cache.is_writable()


def test_not_a_digest_is_refused(tmp_path):
    cache = cache_for(str(tmp_path), tmp_path)
    for bad in ("abc", "zz" * 32, "../" * 30):
        with pytest.raises(BundleNotFound):
            cache.ensure("t", "e", bad)


def test_on_extract_hook_runs_in_the_temp_folder(server, tmp_path):
    seen = []
    digest = publish(server, sample())
    cache = cache_for(server.base, tmp_path)
    cache.on_extract = lambda tree: seen.append((tree, (tree / "ui" / "index.html").is_file()))
    cache.ensure("t", "e", digest)
    assert seen[0][1] and seen[0][0].parent == tmp_path / "cache" / "tmp"

    other = publish(server, sample(1))
    cache.on_extract = lambda tree: 1 / 0
    with pytest.raises(ExtractFailed, match="indexing failed: ZeroDivisionError"):
        cache.ensure("t", "e", other)
    assert not (tmp_path / "cache" / other).exists()


def test_eight_threads_one_download(server, tmp_path):
    digest = publish(server, sample(size=200_000))
    cache = cache_for(server.base, tmp_path)
    server.release.clear()  # hold the download until every thread is waiting
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.ensure("t", "e", digest))) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    server.release.set()
    for t in threads:
        t.join(10)
    assert len(results) == 8 and len({id(r) for r in results}) == 1
    assert len(server.gets) == 1 and (cache.misses, cache.hits) == (1, 7)


def test_different_hashes_do_not_wait_for_each_other(server, tmp_path):
    slow, fast = publish(server, sample(1)), publish(server, sample(2))
    cache = cache_for(server.base, tmp_path)
    server.slow = {f"/{bundle_key('t', 'e', slow)}"}
    server.release.clear()
    blocked = threading.Thread(target=cache.ensure, args=("t", "e", slow))
    blocked.start()
    time.sleep(0.2)  # the slow download now holds its hash's lock
    started = time.monotonic()
    assert cache.ensure("t", "e", fast).wasm_path.is_file()
    assert time.monotonic() - started < 2 and blocked.is_alive()
    server.release.set()
    blocked.join(10)


ENSURE_SCRIPT = """
import sys
{prelude}
sys.path.insert(0, {root!r})
from storage.bundles.cache import BundleCache
from storage.bundles.settings import BundleSettings
cache = BundleCache(BundleSettings(bundle_store_base={base!r}, cache_root={cache!r}))
{body}
"""


def run_script(prelude: str, body: str, base: str, cache: Path) -> subprocess.Popen:
    code = ENSURE_SCRIPT.format(prelude=prelude, root=str(ROOT), base=base, cache=str(cache), body=body)
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_processes_share_one_download(server, tmp_path):
    digest = publish(server, sample(size=100_000))
    server.release.clear()
    procs = [run_script("", f"print(cache.ensure('t', 'e', {digest!r}).root)", server.base, tmp_path / "cache")
             for _ in range(3)]
    time.sleep(1.5)  # all three are started; one holds the lock and waits on the server
    server.release.set()
    outs = [p.communicate(timeout=30) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert {o.strip() for o, _ in outs} == {str(tmp_path / "cache" / digest)}
    assert len(server.gets) == 1


def test_gevent_greenlets_share_one_download(server, tmp_path):
    digest = publish(server, sample(size=100_000))
    body = f"""
import gevent
jobs = [gevent.spawn(cache.ensure, 't', 'e', {digest!r}) for _ in range(8)]
gevent.joinall(jobs, timeout=20)
assert all(j.successful() for j in jobs), [j.exception for j in jobs]
print(cache.misses, cache.hits)
"""
    proc = run_script("from gevent import monkey; monkey.patch_all()", body, server.base, tmp_path / "cache")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.split() == ["1", "7"]
    assert len(server.gets) == 1


def test_eviction_keeps_pinned_and_removes_lru(server, tmp_path):
    digests = [publish(server, sample(i, size=50_000)) for i in range(4)]
    cache = cache_for(server.base, tmp_path, cache_max_bytes=130_000)  # room for two bundles
    root = tmp_path / "cache"
    with cache.use(digests[0]):
        first = cache.ensure("t", "e", digests[0])
        (first.compiled_dir / "main.cwasm").write_bytes(b"artifact")
        cache.ensure("t", "e", digests[1])
        cache.ensure("t", "e", digests[2])  # over the cap: 1 is the oldest idle one
        assert (root / digests[0]).is_dir() and not (root / digests[1]).exists()
        cache.ensure("t", "e", digests[3])  # 0 is still pinned, so 2 goes
        assert (root / digests[0]).is_dir() and not (root / digests[2]).exists()
    assert cache.evictions == 2 and cache.bytes_evicted > 100_000
    cache.ensure("t", "e", digests[1])  # 0 was used last (until its unpin), so 3 is the LRU one
    assert sorted(p.name for p in root.iterdir() if len(p.name) == 64) == sorted(digests[:2])
    assert list((root / "tmp").iterdir()) == []


def test_eviction_spares_bundles_pinned_by_another_process(server, tmp_path):
    a, b = publish(server, sample(1, 50_000)), publish(server, sample(2, 50_000))
    root = tmp_path / "cache"
    cache_for(server.base, tmp_path).ensure("t", "e", a)
    holder = run_script("", f"with cache.use({a!r}):\n    print('pinned', flush=True)\n    sys.stdin.readline()",
                        server.base, root)
    assert holder.stdout.readline().strip() == "pinned"
    small = cache_for(server.base, tmp_path, cache_max_bytes=60_000)
    small.ensure("t", "e", b)
    assert (root / a).is_dir() and small.evictions == 0
    holder.communicate("\n", timeout=10)
    small.ensure("t", "e", b)  # a hit does not evict; the next extraction would
    c = publish(server, sample(3, 50_000))
    small.ensure("t", "e", c)
    assert not (root / a).exists() and not (root / b).exists()


def test_lock_files_do_not_pile_up(server, tmp_path):
    """Requests for hashes that do not exist (or no longer exist) leave no lock files behind."""
    cache = cache_for(server.base, tmp_path, cache_max_bytes=60_000)
    for i in range(5):
        missing = f"{i:02x}" * 32
        with cache.use(missing), pytest.raises(BundleNotFound):
            cache.ensure("t", "e", missing)
    a, b = publish(server, sample(1, 50_000)), publish(server, sample(2, 50_000))
    for digest in (a, b):
        with cache.use(digest):
            cache.ensure("t", "e", digest)
    assert {p.name for p in (tmp_path / "cache" / "locks").iterdir()} == {"evict", f"{b}.pin"}


def test_compiled_artifacts_count_against_the_cap(server, tmp_path):
    a, b = publish(server, sample(1, 50_000)), publish(server, sample(2, 50_000))
    cache = cache_for(server.base, tmp_path, cache_max_bytes=130_000)
    root = tmp_path / "cache"
    cache.ensure("t", "e", a)
    with cache.use(b):
        bundle = cache.ensure("t", "e", b)
        assert (root / a).is_dir()  # two extracted bundles fit
        (bundle.compiled_dir / "main.cwasm").write_bytes(b"c" * 40_000)
        cache.account(b)  # b is pinned and grew: a is the least recently used idle bundle
        assert not (root / a).exists() and (root / b).is_dir()
    assert bundle.bytes > 90_000 and cache.evictions == 1
    assert cache_for(server.base, tmp_path).dir.read_meta(b)["bytes"] == bundle.bytes
