"""alga:extension/storage: guest key-value storage (reference §4.5).

Attached mode (``STORAGE_API_BASE_URL`` or ``REGISTRY_BASE_URL``): the Alga
server's ``/api/internal/ext-storage`` API, with the reference's payloads and
status mapping. Standalone mode: storage/kv.py in the SQLite registry, with the
server's semantics. Preconditions in both: ``cap:storage.kv`` and a non-empty
install id, else ``denied``.
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
import sqlite3
from typing import Any

from runner.host import alga_api
from runner.host.call import CallContext
from runner.host.values import get as field
from runner.host.values import record
from runner.wasm_compat import Err
from storage.kv import KVError, KVStore

log = logging.getLogger("runner.host.storage")

CAP = "cap:storage.kv"
_STATUS = {401: "denied", 403: "denied", 404: "missing", 409: "conflict", 429: "denied"}


class StorageError(Exception):
    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


def _entry(namespace: str, key: str, value: bytes, revision: int | None):
    return record(namespace=namespace, key=key, value=value, revision=revision)


def _guarded(fn):
    def host_fn(ctx: CallContext, *args):
        if not ctx.allows(CAP):
            return Err("denied")
        if not ctx.install_id:
            return Err("denied")
        try:
            return fn(ctx, *args)
        except StorageError as e:
            return Err(e.code)
    host_fn.__name__ = fn.__name__
    return host_fn


@_guarded
def get(ctx: CallContext, namespace: str, key: str):
    if not alga_api.attached(ctx.settings):
        e = _local(ctx, "get", namespace, key)
        return _entry(e.namespace, e.key, e.value, e.revision)
    reply = _remote(ctx, "get", {"namespace": namespace, "key": key})
    return parse_entry(reply, namespace, key)


@_guarded
def put(ctx: CallContext, entry):
    namespace, key, value, revision = (field(entry, "namespace"), field(entry, "key"), bytes(field(entry, "value")),
                                       field(entry, "revision"))
    if not alga_api.attached(ctx.settings):
        e = _local(ctx, "put", namespace, key, value, revision)
        return _entry(namespace, key, value, e.revision)
    payload: dict[str, Any] = {"namespace": namespace, "key": key, "value": base64.b64encode(value).decode(),
                               "metadata": {"encoding": "base64-bytes"}}
    if revision is not None:
        payload["ifRevision"] = revision
    reply = _remote(ctx, "put", payload)
    stored = reply.get("revision") if isinstance(reply, dict) else None
    return _entry(namespace, key, value, stored if _is_u64(stored) else None)


@_guarded
def delete(ctx: CallContext, namespace: str, key: str):
    if not alga_api.attached(ctx.settings):
        if not _local(ctx, "delete", namespace, key):
            raise StorageError("conflict")  # what the reference makes of the server's {"success": false}
        return None
    reply = _remote(ctx, "delete", {"namespace": namespace, "key": key})
    if isinstance(reply, dict) and reply.get("success") is False:
        raise StorageError("conflict")
    return None


@_guarded
def list_entries(ctx: CallContext, namespace: str, cursor: str | None):
    if not alga_api.attached(ctx.settings):
        entries, _next = _local(ctx, "list", namespace, cursor)
        return [_entry(e.namespace, e.key, e.value, e.revision) for e in entries]
    payload: dict[str, Any] = {"namespace": namespace, "includeValues": True, "includeMetadata": True}
    if cursor is not None:
        payload["cursor"] = cursor
    reply = _remote(ctx, "list", payload)
    items = reply.get("items") if isinstance(reply, dict) else None
    return [parse_entry(item) for item in (items if isinstance(items, list) else [])]


# -- attached mode -------------------------------------------------------------------------

def _remote(ctx: CallContext, operation: str, payload: dict) -> Any:
    try:
        return alga_api.call(ctx, "storage", operation, payload)
    except alga_api.ApiError as e:
        raise StorageError(_STATUS.get(e.status, "internal") if e.kind == "status" else "internal") from None


def parse_entry(value: Any, namespace: str | None = None, key: str | None = None):
    """A server entry object -> storage-entry (reference ``parse_storage_entry``)."""
    if not isinstance(value, dict):
        raise StorageError("internal")
    ns = value.get("namespace") if isinstance(value.get("namespace"), str) else namespace
    k = value.get("key") if isinstance(value.get("key"), str) else key
    if ns is None or k is None:
        raise StorageError("internal")
    revision = value.get("revision")
    metadata = value.get("metadata") if isinstance(value.get("metadata"), dict) else {}
    try:
        data = decode_value(value.get("value"), metadata)
    except ValueError:
        raise StorageError("internal") from None
    return _entry(ns, k, data, revision if _is_u64(revision) else None)


def decode_value(value: Any, metadata: dict) -> bytes:
    """Stored JSON value -> bytes, as the reference decodes it."""
    if metadata.get("encoding") == "base64-bytes":
        if not isinstance(value, str):
            raise ValueError("expected a base64 string")
        return _b64(value)
    if isinstance(value, dict) and isinstance(value.get("_bytes_b64"), str):
        return _b64(value["_bytes_b64"])
    if isinstance(value, str):
        try:
            return _b64(value)
        except ValueError:
            return value.encode("utf-8")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as e:
        raise ValueError(str(e)) from None


def _is_u64(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 64


# -- standalone mode -----------------------------------------------------------------------

_stores: dict[tuple[str, int], KVStore] = {}


def _local(ctx: CallContext, operation: str, namespace: str, *args):
    s = ctx.settings
    store = _stores.get((s.registry_db, s.storage_max_value_bytes))
    if store is None:
        store = _stores[(s.registry_db, s.storage_max_value_bytes)] = KVStore(s.registry_db,
                                                                                 s.storage_max_value_bytes)
    try:
        return getattr(store, operation)(ctx.tenant_id, ctx.install_id, namespace, *args)
    except KVError as e:
        if e.code == "invalid":
            log.warning("storage.%s refused: %s", operation, e, extra=ctx.ids)
        raise StorageError("internal" if e.code == "invalid" else e.code) from None
    except sqlite3.Error as e:  # e.g. still locked after the busy timeout: an error value, not a trap
        log.error("storage.%s failed: %s", operation, e, extra=ctx.ids)
        raise StorageError("internal") from None


INTERFACES = {"alga:extension/storage": {"get": get, "put": put, "delete": delete, "list-entries": list_entries}}
