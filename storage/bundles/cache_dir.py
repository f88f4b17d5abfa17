"""The EXT_CACHE_ROOT folder: layout, per-hash locks, pins and LRU eviction by bytes.

Layout (one folder per content hash, shared by every tenant and process)::

    <root>/<hex>/{bundle/, ui/, compiled/, meta.json, ...}   appears whole, by rename
    <root>/tmp/                                               downloads, extractions, evicted trees
    <root>/locks/<hex>.fetch   exclusive while one process fetches and extracts <hex>; removed after
    <root>/locks/<hex>.pin     shared while a request uses <hex>; eviction needs it exclusively

Lock files are unlinked while held exclusively; whoever then gets a lock checks that
its file is still the one at the path (else it retries), so no lock file outlives its
use and unauthenticated requests for random hashes leave nothing behind.

File locks (storage/bundles/locks.py) poll, so a wait yields to other greenlets under
gevent. The per-hash thread locks are created when needed (gevent's patched ones,
under gevent); the long-lived ones are never held across a wait, so they are safe
even if created before patching.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from storage.bundles.locks import POLL_S, exclusive_lock, flock, lock_file, same_file, unlink

HEX = re.compile(r"[0-9a-f]{64}\Z")
TOUCH_EVERY_S = 60.0  # last use is written to the folder's mtime at most this often
STALE_TMP_S = 3600.0
MAX_IDLE_PIN_FDS = 256
META = "meta.json"


class CacheDir:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.locks = self.root / "locks"
        self._root_s, self._locks_s = str(self.root), str(self.locks)  # str paths: cheaper per request
        self._guard = threading.Lock()
        self._evicting = threading.Lock()
        self._hash_locks: dict[str, list] = {}  # hex -> [Lock, waiters]
        self._pins: dict[str, list] = {}  # hex -> [users in this process, pin file fd]
        self._sizes: dict[str, int] = {}
        self._used: dict[str, float] = {}
        self._touched: dict[str, float] = {}
        self._prepared = False

    def bundle_root(self, hex_hash: str) -> Path:
        return self.root / hex_hash

    def _pin_path(self, hex_hash: str) -> str:
        return f"{self._locks_s}/{hex_hash}.pin"

    def prepare(self) -> None:
        """Create the folders; the first time, drop temp leftovers of crashed processes."""
        if self._prepared:
            return
        for d in (self.root, self.tmp, self.locks):
            d.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - STALE_TMP_S
        for entry in os.scandir(self.tmp):
            try:
                stale = entry.stat(follow_symlinks=False).st_mtime < cutoff
            except FileNotFoundError:  # another process just removed it
                continue
            if stale:
                remove_path(entry.path)
        self._prepared = True

    def temp_paths(self, hex_hash: str) -> tuple[Path, Path]:
        """A fresh (archive file, work folder) pair under tmp/."""
        stem = self.tmp / f"{hex_hash}.{secrets.token_hex(3)}"
        return stem.with_name(stem.name + ".tar.zst"), stem.with_name(stem.name + ".d")

    def read_meta(self, hex_hash: str) -> dict | None:
        try:
            with open(self.bundle_root(hex_hash) / META, encoding="utf-8") as f:
                meta = json.load(f)
        except (OSError, ValueError):
            return None
        self._sizes[hex_hash] = int(meta.get("bytes", 0))
        return meta

    def commit(self, hex_hash: str, work: Path, meta: dict) -> None:
        """Write meta.json into ``work`` and rename it into place; a folder already there wins."""
        with open(work / META, "w", encoding="utf-8") as f:
            json.dump(meta, f)
        try:
            os.rename(work, self.bundle_root(hex_hash))
        except OSError:
            if self.read_meta(hex_hash) is None:
                raise
        self._sizes[hex_hash] = meta["bytes"]
        self.touch(hex_hash)

    def remeasure(self, hex_hash: str) -> int | None:
        """Measure the bundle folder again and record the size (also in its meta.json, for processes
        that read it later); None when the bundle is not cached."""
        meta = self.read_meta(hex_hash)
        if meta is None:
            return None
        meta["bytes"] = tree_bytes(self.bundle_root(hex_hash))
        tmp = self.tmp / f"{hex_hash}.{secrets.token_hex(3)}.meta"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(meta, f)
        os.replace(tmp, self.bundle_root(hex_hash) / META)
        self._sizes[hex_hash] = meta["bytes"]
        return meta["bytes"]

    @contextmanager
    def hash_lock(self, hex_hash: str) -> Iterator[None]:
        """Single flight for one hash: in this process, then across processes."""
        with self._guard:
            entry = self._hash_locks.setdefault(hex_hash, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0], exclusive_lock(self.locks / f"{hex_hash}.fetch"):
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if not entry[1]:
                    del self._hash_locks[hex_hash]

    def pin(self, hex_hash: str) -> None:
        """Count a user of ``hex_hash``; the first one in this process holds the pin file shared."""
        path = self._pin_path(hex_hash)
        while True:
            with self._guard:
                entry = self._pins.get(hex_hash)
                if entry is not None and entry[0]:
                    entry[0] += 1
                    return
                if entry is None:
                    entry = self._pins[hex_hash] = [0, os.open(path, os.O_RDWR | os.O_CREAT, 0o644)]
                if flock(entry[1], fcntl.LOCK_SH, wait=False):
                    if same_file(entry[1], path):
                        entry[0] = 1
                        return
                    os.close(self._pins.pop(hex_hash)[1])  # replaced on disk: take the new file
                    continue
            time.sleep(POLL_S)  # another process is renaming this bundle away

    def unpin(self, hex_hash: str) -> None:
        with self._guard:
            entry = self._pins[hex_hash]
            entry[0] -= 1
            if entry[0]:
                return
            cached = hex_hash in self._sizes or os.path.isdir(f"{self._root_s}/{hex_hash}")
            if not cached and flock(entry[1], fcntl.LOCK_EX, wait=False):
                unlink(self._pin_path(hex_hash))  # nothing cached and nobody else pins it
                os.close(self._pins.pop(hex_hash)[1])
                return
            fcntl.flock(entry[1], fcntl.LOCK_UN)  # the fd stays open for the next pin
            if len(self._pins) > MAX_IDLE_PIN_FDS:
                for key in [k for k, e in self._pins.items() if not e[0]]:
                    os.close(self._pins.pop(key)[1])
        self.touch(hex_hash)

    def pinned(self, hex_hash: str) -> bool:
        entry = self._pins.get(hex_hash)
        return bool(entry and entry[0])

    def touch(self, hex_hash: str) -> None:
        now = time.time()
        self._used[hex_hash] = now
        if now - self._touched.get(hex_hash, 0.0) > TOUCH_EVERY_S:
            self._touched[hex_hash] = now
            try:
                os.utime(f"{self._root_s}/{hex_hash}")
            except OSError:
                pass

    def usage(self) -> list[tuple[str, int, float]]:
        """(hex, bytes, last use) of every complete bundle under the root."""
        out = []
        for entry in os.scandir(self.root):
            if not HEX.match(entry.name):
                continue
            size = self._sizes.get(entry.name)
            if size is None and self.read_meta(entry.name) is None:
                continue
            try:
                mtime = entry.stat().st_mtime
            except OSError:
                continue
            out.append((entry.name, self._sizes[entry.name], max(mtime, self._used.get(entry.name, 0.0))))
        return out

    def evict(self, cap: int, keep: str) -> tuple[list[tuple[str, int]], int | None]:
        """Remove least recently used idle bundles until at most ``cap`` bytes remain.

        Returns the evicted (hex, bytes) and the bytes left (None when another eviction is
        running here or in another process: that one does the work). ``keep`` is never removed.
        """
        if not self._evicting.acquire(blocking=False):
            return [], None
        fd = os.open(self.locks / "evict", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not flock(fd, fcntl.LOCK_EX, wait=False):
                return [], None
            entries = sorted(self.usage(), key=lambda e: e[2])
            total = sum(size for _, size, _ in entries)
            evicted = []
            for hex_hash, size, _ in entries:
                if total <= cap:
                    break
                if hex_hash != keep and self.discard(hex_hash, only_idle=True):
                    total -= size
                    evicted.append((hex_hash, size))
            return evicted, total
        finally:
            os.close(fd)
            self._evicting.release()

    def discard(self, hex_hash: str, only_idle: bool) -> bool:
        """Move the bundle folder aside atomically, then delete it; False if it is in use."""
        path = self._pin_path(hex_hash)
        fd = lock_file(path, fcntl.LOCK_EX, wait=False)
        try:
            with self._guard:  # no pin in this process can start while we decide
                if only_idle and (fd is None or self.pinned(hex_hash)):
                    return False
                aside = self.tmp / f"{hex_hash}.{secrets.token_hex(3)}.evicted"
                try:
                    os.rename(self.bundle_root(hex_hash), aside)
                except FileNotFoundError:
                    return False
                if fd is not None and not self.pinned(hex_hash):
                    unlink(path)
                    idle = self._pins.pop(hex_hash, None)
                    if idle is not None:
                        os.close(idle[1])
        finally:
            if fd is not None:
                os.close(fd)
        for d in (self._sizes, self._used, self._touched):
            d.pop(hex_hash, None)
        remove_path(aside)
        return True

    def is_writable(self) -> bool:
        probe = self.root / "healthz.tmp"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"ok")
            probe.unlink()
            return True
        except OSError:
            return False


def remove_path(path: str | os.PathLike) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def tree_bytes(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:  # a compiler's temp file, renamed meanwhile
                pass
    return total


__all__ = ["CacheDir", "HEX", "remove_path", "tree_bytes"]
