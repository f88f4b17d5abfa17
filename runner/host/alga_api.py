"""The client for the Alga server's internal extension APIs (attached mode, reference §4.11).

``POST {internal_api_base}/api/internal/ext-{area}/install/{install_id}`` with
``x-runner-auth`` and the JSON body ``{..payload, "operation": op}``, for the
storage, scheduler, invoicing, clients and services interfaces. Each interface
maps :class:`ApiError` to its own error values; this module knows nothing of WIT.

Redirects are not followed (a POST to an internal API has no reason to move,
and the token must not travel to another origin). Every call is bounded by the
execution's deadline (at most 30 s, as the reference).
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import quote

import requests

log = logging.getLogger("runner.host.alga_api")

TIMEOUT_S = 30.0
MAX_RESPONSE_BYTES = 16 << 20

_session: requests.Session | None = None


class ApiError(Exception):
    """Why a call gave no JSON answer.

    ``kind`` is ``"base"`` / ``"token"`` (not configured), ``"transport"``,
    ``"json"`` (2xx body is not JSON) or ``"status"`` (non-2xx: see ``status``,
    ``text`` and ``body``, the parsed JSON of the error answer or None).
    """

    def __init__(self, kind: str, status: int | None = None, text: str = "", body: Any = None):
        super().__init__(kind if status is None else f"{kind} {status}")
        self.kind = kind
        self.status = status
        self.text = text
        self.body = body


def attached(settings) -> bool:
    """True when an Alga server base URL is configured (otherwise standalone)."""
    return bool(settings.internal_api_base)


def call(ctx, area: str, operation: str, payload: dict[str, Any]) -> Any:
    """POST one operation; returns the decoded JSON (None for an empty 2xx body)."""
    s = ctx.settings
    base = s.internal_api_base
    if not base:
        raise ApiError("base")
    token = s.internal_api_token
    if not token:
        raise ApiError("token")
    url = f"{base}/api/internal/ext-{area}/install/{quote(ctx.install_id or '', safe='')}"
    body = {**payload, "operation": operation}
    started = time.monotonic()
    try:
        response = _http().post(url, data=json.dumps(body), allow_redirects=False, stream=True,
                                timeout=ctx.remaining(TIMEOUT_S),
                                headers={"content-type": "application/json", "x-runner-auth": token})
        try:
            raw = read_capped(response, started + ctx.remaining(TIMEOUT_S))
        finally:
            response.close()
    except (requests.RequestException, OSError) as e:
        log.warning("ext-%s %s: transport failure: %s", area, operation, type(e).__name__, extra=ctx.ids)
        raise ApiError("transport") from None
    text = raw.decode("utf-8", "replace")
    status = response.status_code
    ms = round((time.monotonic() - started) * 1000, 1)
    if not 200 <= status < 300:
        log.warning("ext-%s %s answered %s", area, operation, status,
                    extra={**ctx.ids, "status": status, "ms": ms, "body": text[:500]})
        raise ApiError("status", status, text, _json_or_none(text))
    log.info("ext-%s %s", area, operation, extra={**ctx.ids, "status": status, "ms": ms})
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        log.warning("ext-%s %s: response is not JSON", area, operation, extra=ctx.ids)
        raise ApiError("json", status, text) from None


def _http() -> requests.Session:
    global _session
    if _session is None:
        _session = requests.Session()
    return _session


def read_capped(response: requests.Response, deadline: float, what: str = "response") -> bytes:
    """A streamed body, refused past MAX_RESPONSE_BYTES or the deadline (also used by ui-proxy)."""
    chunks, size = [], 0
    for chunk in response.iter_content(64 << 10):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise requests.exceptions.ContentDecodingError(f"{what} too large")
        if time.monotonic() > deadline:
            raise requests.exceptions.ReadTimeout("deadline passed while reading")
        chunks.append(chunk)
    return b"".join(chunks)


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return None


def pick(obj: dict, *names: str, default: Any = None) -> Any:
    """The first of ``names`` present in ``obj`` (camelCase then snake_case lookups)."""
    for name in names:
        if name in obj:
            return obj[name]
    return default
