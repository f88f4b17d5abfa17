"""Guest key-value storage in the SQLite registry (standalone mode, table ``ext_storage``).

The semantics are the Alga server's (``ee/server/src/lib/extensions/storage/v2``),
so a guest behaves the same in both modes:

* namespace 1-128 characters; key 1-256 characters without ``/``;
* every write bumps ``revision`` (1 for a new key); ``if_revision`` given and
  different from the stored one (or the key absent) is a conflict;
* ``delete`` of an absent key reports ``False`` (the host maps it to ``conflict``,
  as the reference runner does with the server's ``{"success": false}``);
* ``list`` is in key order, at most 25 entries, after an opaque cursor
  (base64url of ``{"key": <last key>}``, the server's format);
* values are capped at ``EXT_STORAGE_MAX_VALUE_BYTES``;
* rows are scoped by tenant and install.

Writers in several processes are safe: WAL, a busy timeout (storage/db.py) and
``BEGIN IMMEDIATE`` around every read-modify-write. No wasmtime import here.
"""
from __future__ import annotations

import base64
import binascii
import json
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from storage.db import open_db

LIST_LIMIT = 25


class KVError(Exception):
    """``code`` is ``invalid`` (the server's 400), ``missing`` (404) or ``conflict`` (409)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Entry:
    namespace: str
    key: str
    value: bytes
    revision: int


class KVStore:
    def __init__(self, db_path: str, max_value_bytes: int):
        self.db_path = db_path
        self.max_value_bytes = max_value_bytes

    @property
    def _conn(self):
        return open_db(self.db_path).conn

    def get(self, tenant: str, install: str, namespace: str, key: str) -> Entry:
        _check_namespace(namespace)
        _check_key(key)
        row = self._conn.execute(
            "SELECT value, revision FROM ext_storage WHERE tenant_id = ? AND install_id = ? AND namespace = ? "
            "AND key = ?", (tenant, install, namespace, key)).fetchone()
        if row is None:
            raise KVError("missing", "record not found")
        return Entry(namespace, key, bytes(row[0]), row[1])

    def put(self, tenant: str, install: str, namespace: str, key: str, value: bytes,
            if_revision: int | None = None) -> Entry:
        _check_namespace(namespace)
        _check_key(key)
        if len(value) > self.max_value_bytes:
            raise KVError("invalid", f"value exceeds max size of {self.max_value_bytes} bytes")
        where = (tenant, install, namespace, key)
        with self._write() as conn:
            row = conn.execute("SELECT revision FROM ext_storage WHERE tenant_id = ? AND install_id = ? "
                               "AND namespace = ? AND key = ?", where).fetchone()
            if if_revision is not None and (row is None or row[0] != if_revision):
                raise KVError("conflict", "ifRevision did not match stored revision")
            revision = row[0] + 1 if row else 1
            conn.execute(
                "INSERT INTO ext_storage (tenant_id, install_id, namespace, key, value, revision) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, install_id, namespace, key) DO UPDATE SET "
                "value = excluded.value, revision = excluded.revision, "
                "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                (*where, bytes(value), revision))
        return Entry(namespace, key, bytes(value), revision)

    def delete(self, tenant: str, install: str, namespace: str, key: str) -> bool:
        _check_namespace(namespace)
        _check_key(key)
        with self._write() as conn:
            cur = conn.execute("DELETE FROM ext_storage WHERE tenant_id = ? AND install_id = ? AND namespace = ? "
                               "AND key = ?", (tenant, install, namespace, key))
            return cur.rowcount > 0

    def list(self, tenant: str, install: str, namespace: str, cursor: str | None = None,
             limit: int = LIST_LIMIT) -> tuple[list[Entry], str | None]:
        """Entries after ``cursor`` in key order, and the cursor of the next page (or None)."""
        _check_namespace(namespace)
        after = decode_cursor(cursor) if cursor else None
        sql = ("SELECT key, value, revision FROM ext_storage WHERE tenant_id = ? AND install_id = ? "
               "AND namespace = ?")
        args: list = [tenant, install, namespace]
        if after is not None:
            sql += " AND key > ?"
            args.append(after)
        sql += " ORDER BY key LIMIT ?"
        args.append(limit + 1)
        rows = self._conn.execute(sql, args).fetchall()
        entries = [Entry(namespace, k, bytes(v), r) for k, v, r in rows[:limit]]
        return entries, encode_cursor(rows[limit][0]) if len(rows) > limit else None

    @contextmanager
    def _write(self) -> Iterator:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"key": key}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise KVError("invalid", "cursor is invalid or corrupted") from None
    if not isinstance(data, dict) or not isinstance(data.get("key"), str):
        raise KVError("invalid", "cursor is invalid or corrupted")
    return data["key"]


def _check_namespace(namespace: str) -> None:
    if not 1 <= len(namespace) <= 128:
        raise KVError("invalid", "namespace must be 1-128 characters")


def _check_key(key: str) -> None:
    if not 1 <= len(key) <= 256 or "/" in key:
        raise KVError("invalid", 'key must be 1-256 characters and must not contain "/"')
