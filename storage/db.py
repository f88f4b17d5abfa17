"""Opening the SQLite registry: WAL, a busy timeout, foreign keys, migrations applied.

Connections are per process and per OS thread (sqlite3 objects must not cross a
fork), so each Gunicorn worker, wasm worker and CLI command opens its own.
"""
from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import sqlite_utils

import migrations

BUSY_TIMEOUT_MS = 10000
_migrated: set[str] = set()
_migrate_lock = threading.Lock()


def _thread_local() -> threading.local:
    """A per-OS-thread local. Under gevent's patching ``threading.local`` is per greenlet, which would
    open a connection per request; greenlets of one thread can share one because sqlite3 calls never
    yield to another greenlet."""
    try:
        from gevent import monkey
    except ImportError:
        return threading.local()
    if monkey.is_module_patched("threading"):
        return monkey.get_original("threading", "local")()
    return threading.local()


_local = _thread_local()


def connect(path: str | Path) -> sqlite3.Connection:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    key = str(path.resolve())
    if key not in _migrated:
        with _migrate_lock:
            if key not in _migrated:
                migrations.apply(conn)
                _migrated.add(key)
    return conn


def open_db(path: str | Path) -> sqlite_utils.Database:
    """The thread's Database for ``path`` (created and migrated on first use)."""
    cache = getattr(_local, "dbs", None)
    if cache is None:
        cache = _local.dbs = {}
    # The pid in the key: a forked child opens its own connections and leaves the parent's untouched.
    key = (os.getpid(), str(Path(path).resolve()))
    db = cache.get(key)
    if db is None:
        db = cache[key] = sqlite_utils.Database(connect(path))
    return db
