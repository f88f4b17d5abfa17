"""The /v1/execute wire contract (reference §1.1): parsing, error codes, envelopes. Stdlib and orjson only.

Rejections mirror the reference's JSON extractor: wrong content type 415,
malformed JSON 400, a body that does not fit the schema 422; ours carry a JSON
body naming the field. Unknown fields are accepted and ignored. Like the
reference's serde_json, orjson takes strict UTF-8 JSON: no byte-order mark, no
NaN, no lone surrogates, at most 1024 levels of nesting (all 400); integers
beyond 64 bits come back as floats, which the schema refuses (422).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

MISSING_ROUTING_HEADERS = "missing_routing_headers"
INVALID_CONTENT_HASH = "invalid_content_hash"
ENGINE_INIT_FAILED = "engine_init_failed"
BUNDLE_FETCH_FAILED = "bundle_fetch_failed"
UNKNOWN_CAPABILITIES = "unknown_capabilities"
SECRET_DECRYPT_FAILED = "secret_decrypt_failed"
EXECUTE_FAILED = "execute_failed"

# Deeper documents are refused (400), as the reference's serde_json does past its recursion limit of 128.
MAX_DEPTH = 128
_HASH = re.compile(r"^(?:sha256:)?([0-9a-fA-F]{64})$")
_SURROGATE = re.compile("[\ud800-\udfff]")


class RequestRejected(Exception):
    """The request never reaches the executor: answered with ``status`` and a JSON body."""

    def __init__(self, status: int, error: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.error, self.message, self.field = status, error, message, field

    def body(self) -> dict[str, Any]:
        body = {"error": self.error, "message": self.message}
        if self.field:
            body["field"] = self.field
        return body


@dataclass
class Context:
    tenant_id: str
    extension_id: str
    content_hash: str
    request_id: str | None = None
    install_id: str | None = None
    version_id: str | None = None
    config: dict[str, str] = field(default_factory=dict)


@dataclass
class Http:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body_b64: str | None = None


@dataclass
class Limits:
    timeout_ms: int | None = None
    memory_mb: int | None = None
    fuel: int | None = None


@dataclass
class SecretEnvelope:
    ciphertext_b64: str
    version: str | None = None
    algorithm: str | None = None
    expires_at: str | None = None
    key_path: str | None = None
    mount: str | None = None


@dataclass
class User:
    user_id: str
    user_email: str
    user_name: str
    user_type: str
    client_name: str = ""
    client_id: str | None = None
    additional_fields: dict[str, str] = field(default_factory=dict)


@dataclass
class ExecuteRequest:
    context: Context
    http: Http
    limits: Limits = field(default_factory=Limits)
    secret_envelope: SecretEnvelope | None = None
    providers: list[str] = field(default_factory=list)
    user: User | None = None


def parse_execute(content_type: str | None, body: bytes) -> ExecuteRequest:
    if (content_type or "").split(";")[0].strip().lower() != "application/json":
        raise RequestRejected(415, "unsupported_media_type", "expected content-type: application/json")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise RequestRejected(400, "malformed_json", f"request body is not valid JSON: {e}") from None
    return from_document(doc)


def from_document(doc: Any) -> ExecuteRequest:
    """The request in a decoded JSON document, whatever library decoded it: nesting depth, Unicode
    and every field checked here (RequestRejected naming the field)."""
    if not _within_depth(doc):
        raise _too_deep()
    obj = _object(doc, "body")
    ctx = _object(_required(obj, "context", "body"), "context")
    http = _object(_required(obj, "http", "body"), "http")
    limits = _optional_object(obj, "limits", "body")
    envelope = _optional_object(obj, "secret_envelope", "body")
    user = _optional_object(obj, "user", "body")
    providers = obj.get("providers")
    if providers is None:
        providers = []
    elif not isinstance(providers, list) or not all(isinstance(p, str) for p in providers):
        raise _invalid("providers", "must be a list of strings")
    for i, p in enumerate(providers):
        _unicode(p, f"providers[{i}]")
    return ExecuteRequest(
        context=Context(
            tenant_id=_str(ctx, "tenant_id", "context"), extension_id=_str(ctx, "extension_id", "context"),
            content_hash=_str(ctx, "content_hash", "context"), request_id=_opt_str(ctx, "request_id", "context"),
            install_id=_opt_str(ctx, "install_id", "context"), version_id=_opt_str(ctx, "version_id", "context"),
            config=_str_map(ctx, "config", "context"),
        ),
        http=Http(
            method=_str(http, "method", "http"), path=_str(http, "path", "http"),
            query=_str_map(http, "query", "http"), headers=_str_map(http, "headers", "http"),
            body_b64=_opt_str(http, "body_b64", "http"),
        ),
        limits=Limits(**{k: _opt_uint(limits, k, "limits") for k in ("timeout_ms", "memory_mb", "fuel")}),
        secret_envelope=None if envelope is None else SecretEnvelope(
            ciphertext_b64=_str(envelope, "ciphertext_b64", "secret_envelope"),
            **{k: _opt_str(envelope, k, "secret_envelope")
               for k in ("version", "algorithm", "expires_at", "key_path", "mount")},
        ),
        providers=providers,
        user=None if user is None else User(
            **{k: _str(user, k, "user") for k in ("user_id", "user_email", "user_name", "user_type")},
            client_name=_opt_str(user, "client_name", "user") or _opt_str(user, "company_name", "user") or "",
            client_id=_opt_str(user, "client_id", "user"),
            additional_fields=_str_map(user, "additional_fields", "user"),
        ),
    )


def hash_hex(content_hash: str) -> str | None:
    """``sha256:<64 hex>`` or ``<64 hex>`` -> lower-case hex; anything else -> None (DECISIONS 3)."""
    m = _HASH.match(content_hash.strip())
    return m.group(1).lower() if m else None


def envelope(status: int, headers: dict[str, str] | None = None, body_b64: str | None = None,
             error: str | None = None) -> dict[str, Any]:
    """The JSON answer of /v1/execute: all four keys, always."""
    return {"status": status, "headers": headers or {}, "body_b64": body_b64, "error": error}


def failure(status: int, error: str) -> dict[str, Any]:
    return envelope(status, error=error)


# field readers ---------------------------------------------------------------

def _too_deep() -> RequestRejected:
    return RequestRejected(400, "malformed_json", f"request body nests more than {MAX_DEPTH} levels deep")


def _within_depth(doc: Any) -> bool:
    """No array or object in ``doc`` is nested more than MAX_DEPTH deep (iterative: no recursion)."""
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        if depth > MAX_DEPTH:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return True


def _invalid(where: str, problem: str) -> RequestRejected:
    return RequestRejected(422, "invalid_request", f"{where} {problem}", field=where)


def _object(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise _invalid(where, "must be a JSON object")
    return value


def _required(obj: dict, key: str, where: str) -> Any:
    if key not in obj or obj[key] is None:
        raise _invalid(_path(where, key), "is required")
    return obj[key]


def _optional_object(obj: dict, key: str, where: str) -> dict | None:
    value = obj.get(key)
    return None if value is None else _object(value, _path(where, key))


def _unicode(value: str, where: str) -> str:
    """Refuse a lone UTF-16 surrogate (JSON ``"\\ud800"`` or its raw bytes): no valid text holds one,
    and it cannot be encoded to go on (to the guest, a header, a key). 400 as the reference's parser."""
    if not value.isascii() and _SURROGATE.search(value):
        raise RequestRejected(400, "malformed_json", f"{where} holds a lone UTF-16 surrogate (not valid Unicode)",
                              field=where)
    return value


def _str(obj: dict, key: str, where: str) -> str:
    value = _required(obj, key, where)
    if not isinstance(value, str):
        raise _invalid(_path(where, key), "must be a string")
    return _unicode(value, _path(where, key))


def _opt_str(obj: dict | None, key: str, where: str) -> str | None:
    value = (obj or {}).get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(_path(where, key), "must be a string or null")
    return _unicode(value, _path(where, key))


def _opt_uint(obj: dict | None, key: str, where: str) -> int | None:
    value = (obj or {}).get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value >= 1 << 64:
        raise _invalid(_path(where, key), "must be a non-negative integer or null")
    return value


def _str_map(obj: dict, key: str, where: str) -> dict[str, str]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid(_path(where, key), "must be an object of strings")
    for k, v in value.items():
        name = f"{_path(where, key)}.{_unicode(k, _path(where, key) + ' key')}"
        if not isinstance(v, str):
            raise _invalid(name, "must be a string")
        _unicode(v, name)
    return value


def _path(where: str, key: str) -> str:
    return key if where == "body" else f"{where}.{key}"
