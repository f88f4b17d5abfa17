"""Guest key-value storage in the SQLite registry (standalone mode, table ``ext_storage``).

:func:`handle` answers the internal API's ``storage`` operations (get, put, delete, list)
with the Alga server's JSON and statuses (``ee/server/src/lib/extensions/storage/v2``), so
runner/worker/host/storage.py parses both modes with the same code:

* namespace 1-128 characters; key 1-256 characters without ``/`` (else 400);
* every write bumps ``revision`` (1 for a new key); ``ifRevision`` given and different
  from the stored one (or the key absent) is 409;
* get of an absent key is 404; delete of an absent key answers ``{"success": false}``;
* list is in key order, at most 25 entries, after an opaque cursor (base64url of
  ``{"key": <last key>}``, the server's format);
* values are capped at ``EXT_STORAGE_MAX_VALUE_BYTES``; rows are scoped by tenant and install.
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import sqlite_utils

from storage.registry.db import first, transaction

LIST_LIMIT = 25
_WHERE = "tenant_id = ? AND install_id = ? AND namespace = ? AND key = ?"


class KVError(Exception):
    """``status`` is the server's: 400 (invalid), 404 (missing) or 409 (conflict)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def handle(db: sqlite_utils.Database, tenant: str, install: str, body: dict, max_value_bytes: int
           ) -> tuple[int, Any]:
    operation = body.get("operation")
    namespace = body.get("namespace")
    try:
        _check_namespace(namespace)
        if operation == "list":
            return 200, {"items": _list(db, tenant, install, namespace, body.get("cursor"))[0]}
        key = body.get("key")
        _check_key(key)
        if operation == "get":
            return 200, _get(db, tenant, install, namespace, key)
        if operation == "put":
            return 200, {"revision": _put(db, tenant, install, namespace, key, body, max_value_bytes)}
        if operation == "delete":
            return 200, {"success": _delete(db, tenant, install, namespace, key)}
    except KVError as e:
        return e.status, {"error": str(e)}
    return 400, {"error": "Unsupported operation"}


def _entry(namespace: str, key: str, value: bytes, revision: int) -> dict:
    return {"namespace": namespace, "key": key, "value": base64.b64encode(value).decode("ascii"),
            "metadata": {"encoding": "base64-bytes"}, "revision": revision}


def _get(db, tenant: str, install: str, namespace: str, key: str) -> dict:
    row = first(db, f"SELECT value, revision FROM ext_storage WHERE {_WHERE}", [tenant, install, namespace, key])
    if row is None:
        raise KVError(404, "record not found")
    return _entry(namespace, key, bytes(row["value"]), row["revision"])


def _put(db, tenant: str, install: str, namespace: str, key: str, body: dict, max_value_bytes: int) -> int:
    try:
        value = base64.b64decode(body.get("value") or "", validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise KVError(400, "value must be base64") from None
    if len(value) > max_value_bytes:
        raise KVError(400, f"value exceeds max size of {max_value_bytes} bytes")
    if_revision = body.get("ifRevision")
    where = [tenant, install, namespace, key]
    with transaction(db):
        row = first(db, f"SELECT revision FROM ext_storage WHERE {_WHERE}", where)
        if if_revision is not None and (row is None or row["revision"] != if_revision):
            raise KVError(409, "ifRevision did not match stored revision")
        revision = row["revision"] + 1 if row else 1
        db.execute(
            "INSERT INTO ext_storage (tenant_id, install_id, namespace, key, value, revision) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, install_id, namespace, key) DO UPDATE SET "
            "value = excluded.value, revision = excluded.revision, "
            "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            [*where, value, revision])
    return revision


def _delete(db, tenant: str, install: str, namespace: str, key: str) -> bool:
    return db.execute(f"DELETE FROM ext_storage WHERE {_WHERE}", [tenant, install, namespace, key]).rowcount > 0


def _list(db, tenant: str, install: str, namespace: str, cursor: str | None,
          limit: int = LIST_LIMIT) -> tuple[list[dict], str | None]:
    """Entries after ``cursor`` in key order, and the cursor of the next page (or None)."""
    sql = "SELECT key, value, revision FROM ext_storage WHERE tenant_id = ? AND install_id = ? AND namespace = ?"
    args: list = [tenant, install, namespace]
    if cursor:
        sql += " AND key > ?"
        args.append(decode_cursor(cursor))
    rows = list(db.query(sql + " ORDER BY key LIMIT ?", [*args, limit + 1]))
    entries = [_entry(namespace, r["key"], bytes(r["value"]), r["revision"]) for r in rows[:limit]]
    return entries, encode_cursor(rows[limit]["key"]) if len(rows) > limit else None


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"key": key}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise KVError(400, "cursor is invalid or corrupted") from None
    if not isinstance(data, dict) or not isinstance(data.get("key"), str):
        raise KVError(400, "cursor is invalid or corrupted")
    return data["key"]


def _check_namespace(namespace: Any) -> None:
    if not isinstance(namespace, str) or not 1 <= len(namespace) <= 128:
        raise KVError(400, "namespace must be 1-128 characters")


def _check_key(key: Any) -> None:
    if not isinstance(key, str) or not 1 <= len(key) <= 256 or "/" in key:
        raise KVError(400, 'key must be 1-256 characters and must not contain "/"')
