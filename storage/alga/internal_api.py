"""The Alga server's internal extension APIs over HTTP (attached mode, reference §4.11).

``POST {internal_api_base}/api/internal/ext-{area}/install/{install_id}`` with
``x-runner-auth`` and the JSON body ``{..payload, "operation": op}``. Redirects are not
followed (a POST to an internal API has no reason to move, and the token must not
travel to another origin). Every call is bounded by the caller's timeout.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import quote

import requests

from storage.alga.settings import AlgaSettings
from storage.api import ApiError

log = logging.getLogger("storage.alga")

MAX_RESPONSE_BYTES = 16 << 20


class AlgaInternalApi:
    def __init__(self, settings: AlgaSettings, session: requests.Session | None = None):
        self.base = settings.internal_api_base
        self.token = settings.internal_api_token
        self.session = session or requests.Session()

    def call(self, area: str, operation: str, payload: dict[str, Any], *, tenant: str, install: str,
             timeout_s: float, log_extra: dict[str, str]) -> Any:
        if not self.base:
            raise ApiError("base")
        if not self.token:
            raise ApiError("token")
        url = f"{self.base}/api/internal/ext-{area}/install/{quote(install, safe='')}"
        started = time.monotonic()
        try:
            response = self.session.post(url, data=json.dumps({**payload, "operation": operation}),
                                         allow_redirects=False, stream=True, timeout=timeout_s,
                                         headers={"content-type": "application/json", "x-runner-auth": self.token})
            try:
                raw = read_capped(response, started + timeout_s)
            finally:
                response.close()
        except (requests.RequestException, OSError) as e:
            log.warning("ext-%s %s: transport failure: %s", area, operation, type(e).__name__, extra=log_extra)
            raise ApiError("transport") from None
        text = raw.decode("utf-8", "replace")
        status = response.status_code
        ms = round((time.monotonic() - started) * 1000, 1)
        if not 200 <= status < 300:
            log.warning("ext-%s %s answered %s", area, operation, status,
                        extra={**log_extra, "status": status, "ms": ms, "body": text[:500]})
            raise ApiError("status", status, text, _json_or_none(text))
        log.info("ext-%s %s", area, operation, extra={**log_extra, "status": status, "ms": ms})
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except ValueError:
            log.warning("ext-%s %s: response is not JSON", area, operation, extra=log_extra)
            raise ApiError("json", status, text) from None


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
