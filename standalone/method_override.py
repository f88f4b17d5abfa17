"""The ext-proxy ``__method`` override, as Alga's ``packages/product-ext-proxy/ee/handler.ts`` applies it.

Only a browser POST is overridden: by ``?__method=X`` or, when the body is a JSON object, by its
``"__method"`` field (the query wins). A valid query override leaves the query; a valid body override
leaves the body, which is re-serialised as compact JSON (dropped when nothing else is left); an
effective GET drops the body. Invalid values are ignored and change nothing. Pure.
"""
from __future__ import annotations

import json
from typing import Any

FIELD = "__method"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _method(value: Any) -> str | None:
    return value.upper() if isinstance(value, str) and value.upper() in METHODS else None


def _reject_constant(name: str) -> None:
    raise ValueError(name)  # JSON.parse has no NaN/Infinity


def _json_object(body: bytes | None) -> dict | None:
    if not body:
        return None
    try:
        parsed = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError):
        return None
    return parsed if isinstance(parsed, dict) else None


def apply(method: str, query: dict[str, str], body: bytes | None) -> tuple[str, dict[str, str], bytes | None]:
    """(effective method, query, body) of an ext-proxy request."""
    if method != "POST":
        return method, query, body
    by_query = _method(query.get(FIELD))
    parsed = _json_object(body)
    by_body = _method(parsed.get(FIELD)) if parsed is not None else None
    effective = by_query or by_body or method
    if by_query:
        query = {k: v for k, v in query.items() if k != FIELD}
    if effective == "GET":
        return effective, query, None
    if by_body:
        rest = {k: v for k, v in parsed.items() if k != FIELD}
        body = json.dumps(rest, separators=(",", ":"), ensure_ascii=False).encode("utf-8") if rest else None
    return effective, query, body
