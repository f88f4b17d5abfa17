"""The one SQLite layer of the registry: connections, the transaction helper, migrations.

Connections are per process and per OS thread (sqlite3 objects must not cross a fork),
so each Gunicorn worker, wasm worker and CLI command opens its own, in WAL mode with a
busy timeout and foreign keys on. Every read-modify-write runs inside
:func:`transaction` (``BEGIN IMMEDIATE``: writers in several processes queue on the
busy timeout instead of failing mid-transaction); nested calls become savepoints.
"""
from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

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


def open_db(path: str | Path) -> sqlite_utils.Database:
    """This thread's Database for ``path`` (created and migrated on first use in the process)."""
    cache = getattr(_local, "dbs", None)
    if cache is None:
        cache = _local.dbs = {}
    # The pid in the key: a forked child opens its own connections and leaves the parent's untouched.
    key = (os.getpid(), str(Path(path).resolve()))
    db = cache.get(key)
    if db is None:
        db = cache[key] = connect(Path(path))
        resolved = str(Path(path).resolve())
        if resolved not in _migrated:
            with _migrate_lock:
                if resolved not in _migrated:
                    migrate(db)
                    _migrated.add(resolved)
    return db


def connect(path: str | Path) -> sqlite_utils.Database:
    """A new connection with the registry's settings, not migrated (``flask ext migrate`` migrates it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    db = sqlite_utils.Database(conn)
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA synchronous = NORMAL")
    return db


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply pending migrations; returns their names. Serialised across processes by the transaction."""
    with transaction(db):
        pending = [m.name for m in migrations.MIGRATIONS.pending(db)]
        migrations.MIGRATIONS.apply(db)
    return pending


@contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (a savepoint inside an open transaction); rolled back on error."""
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def first(db: sqlite_utils.Database, sql: str, params=()) -> dict | None:
    """The first row of a query as a dict, or None."""
    return next(iter(db.query(sql, params)), None)
