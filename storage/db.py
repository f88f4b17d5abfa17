"""Opening the SQLite registry: WAL, a busy timeout, foreign keys, migrations applied.

Connections are per process and per thread (sqlite3 objects must not cross a
fork), so each Gunicorn worker, wasm worker and CLI command opens its own.
"""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import sqlite_utils

import migrations

BUSY_TIMEOUT_MS = 10000
_local = threading.local()


def connect(path: str | Path) -> sqlite3.Connection:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    migrations.apply(conn)
    return conn


def open_db(path: str | Path) -> sqlite_utils.Database:
    """The thread's Database for ``path`` (created and migrated on first use)."""
    key = str(Path(path).resolve())
    cache = getattr(_local, "dbs", None)
    if cache is None:
        cache = _local.dbs = {}
    db = cache.get(key)
    if db is None:
        db = cache[key] = sqlite_utils.Database(connect(path))
    return db
