"""alga:extension/storage: guest key-value storage (reference §4.5).

The internal API's ``storage`` area, with the reference's payloads and status mapping
(the Alga server when attached, storage/registry/kv.py with the same answers when
standalone). Preconditions: ``cap:storage.kv`` and a non-empty install id, else ``denied``.
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from runner.worker.host.call import CallContext
from runner.worker.host.values import get as field
from runner.worker.host.values import record
from runner.worker.wasm_compat import Err
from storage.api import ApiError

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
        if not ctx.allows(CAP) or not ctx.ids.install:
            return Err("denied")
        try:
            return fn(ctx, *args)
        except StorageError as e:
            return Err(e.code)
    host_fn.__name__ = fn.__name__
    return host_fn


def _call(ctx: CallContext, operation: str, payload: dict) -> Any:
    try:
        return ctx.api("storage", operation, payload)
    except ApiError as e:
        raise StorageError(_STATUS.get(e.status, "internal") if e.kind == "status" else "internal") from None


@_guarded
def get(ctx: CallContext, namespace: str, key: str):
    return parse_entry(_call(ctx, "get", {"namespace": namespace, "key": key}), namespace, key)


@_guarded
def put(ctx: CallContext, entry):
    namespace, key, value, revision = (field(entry, "namespace"), field(entry, "key"), bytes(field(entry, "value")),
                                       field(entry, "revision"))
    payload: dict[str, Any] = {"namespace": namespace, "key": key, "value": base64.b64encode(value).decode(),
                               "metadata": {"encoding": "base64-bytes"}}
    if revision is not None:
        payload["ifRevision"] = revision
    reply = _call(ctx, "put", payload)
    stored = reply.get("revision") if isinstance(reply, dict) else None
    return _entry(namespace, key, value, stored if _is_u64(stored) else None)


@_guarded
def delete(ctx: CallContext, namespace: str, key: str):
    reply = _call(ctx, "delete", {"namespace": namespace, "key": key})
    if isinstance(reply, dict) and reply.get("success") is False:
        raise StorageError("conflict")  # what the reference makes of {"success": false}
    return None


@_guarded
def list_entries(ctx: CallContext, namespace: str, cursor: str | None):
    payload: dict[str, Any] = {"namespace": namespace, "includeValues": True, "includeMetadata": True}
    if cursor is not None:
        payload["cursor"] = cursor
    reply = _call(ctx, "list", payload)
    items = reply.get("items") if isinstance(reply, dict) else None
    return [parse_entry(item) for item in (items if isinstance(items, list) else [])]


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


INTERFACES = {"alga:extension/storage": {"get": get, "put": put, "delete": delete, "list-entries": list_entries}}
