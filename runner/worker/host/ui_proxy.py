"""alga:extension/ui-proxy: ``call-route`` to the host application (reference §4.6, DECISIONS 7).

Standalone mode without ``UI_PROXY_BASE_URL`` answers from ``UI_PROXY_ROUTES_FILE`` instead
(runner/worker/host/ui_proxy_routes.py). Otherwise the URL is ``UI_PROXY_BASE_URL`` + ``/<extension id>`` (unless the route starts
with ``/api/``) + the route's segments, each percent-encoded as the reference's
``url`` crate does. POST when a payload is given (even empty), else GET.
Headers: the execution's ids, ``x-api-key`` from the ``api_key`` secret,
``x-user-id``/``x-user-email``, and ``x-runner-auth: UI_PROXY_AUTH_KEY`` when that
key is set. Redirects are followed, as the reference's client does, but the
auth headers are dropped when a redirect leaves the base URL's origin.
"""
from __future__ import annotations

import logging
import time
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from runner.worker.host.call import CallContext
from runner.worker.host.ui_proxy_routes import RoutesFileError
from runner.worker.wasm_compat import Err
from storage.alga.internal_api import read_capped

log = logging.getLogger("runner.worker.host.ui_proxy")

CAP = "cap:ui.proxy"
DEFAULT_TIMEOUT_MS = 5000
# Characters the url crate leaves alone in a path segment (its SPECIAL_PATH_SEGMENT set is the rest).
_SEGMENT_SAFE = "!$&'()*+,;=:@[]^|"
_SECRET_HEADERS = ("x-runner-auth", "x-api-key", "authorization", "cookie")


class BadRoute(Exception):
    pass


def build_url(base: str, extension: str, route: str) -> str:
    """The target URL; ValueError for an unusable base, BadRoute for a bad route."""
    parts = urlsplit(base.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("UI_PROXY_BASE_URL must be an absolute http(s) URL")
    path_part, _, query = route.partition("?")
    segments = parts.path.split("/")[1:] if parts.path else []
    if segments and segments[-1] == "":
        segments.pop()
    if not (path_part.startswith("/api/") or path_part.startswith("api/")):
        segments.append(_encode(extension))
    for segment in path_part.lstrip("/").split("/"):
        if not segment:
            continue
        if segment in (".", ".."):
            raise BadRoute(f"route segment {segment!r}")
        segments.append(_encode(segment))
    return urlunsplit((parts.scheme, parts.netloc, "/" + "/".join(segments), query, ""))


def _encode(segment: str) -> str:
    return quote(segment, safe=_SEGMENT_SAFE)


def call_route(ctx: CallContext, route: str, payload):
    if not ctx.allows(CAP):
        return Err("denied")
    s = ctx.settings
    if not s.ui_proxy_base_url and ctx.host.ui_proxy_routes is None:
        log.warning("ui-proxy called but neither UI_PROXY_BASE_URL nor (standalone) UI_PROXY_ROUTES_FILE is set",
                    extra=ctx.log_extra)
        return Err("route-not-found")
    if not ctx.ids.tenant or not ctx.ids.extension:
        return Err("internal")
    route = route.strip()
    if not route:
        return Err("bad-request")
    if not s.ui_proxy_base_url:
        return from_routes_file(ctx, route, None if payload is None else bytes(payload))
    try:
        url = build_url(s.ui_proxy_base_url, ctx.ids.extension, route)
    except BadRoute as e:
        log.warning("ui-proxy refused: %s", e, extra=ctx.log_extra)
        return Err("bad-request")
    except ValueError as e:
        log.warning("ui-proxy disabled: %s", e, extra=ctx.log_extra)
        return Err("route-not-found")

    headers = {"x-request-id": ctx.ids.request or "ui-proxy-call", "x-alga-tenant": ctx.ids.tenant,
               "x-alga-extension": ctx.ids.extension}
    if ctx.ids.install is not None:
        headers["x-ext-install-id"] = ctx.ids.install
    if ctx.ids.version is not None:
        headers["x-ext-version-id"] = ctx.ids.version
    if ctx.secrets and "api_key" in ctx.secrets:
        headers["x-api-key"] = ctx.secrets["api_key"]
    if s.ui_proxy_auth_key:
        headers["x-runner-auth"] = s.ui_proxy_auth_key
    if ctx.user:
        headers["x-user-id"] = str(ctx.user.get("user_id") or "")
        headers["x-user-email"] = str(ctx.user.get("user_email") or "")
    if payload is not None:
        headers["content-type"] = "application/json"

    timeout_ms = s.ui_proxy_timeout_ms if s.ui_proxy_timeout_ms > 0 else DEFAULT_TIMEOUT_MS
    budget = ctx.remaining(timeout_ms / 1000)
    started = time.monotonic()
    where = {**ctx.log_extra, "route": route.partition("?")[0]}
    try:
        response = ctx.host.ui_proxy_session.request("POST" if payload is not None else "GET", url, headers=headers,
                                   data=bytes(payload) if payload is not None else None,
                                   timeout=budget, stream=True)
        try:
            status = response.status_code
            body = read_capped(response, started + budget, "ui-proxy response") if 200 <= status < 300 else b""
        finally:
            response.close()
    except (requests.RequestException, OSError) as e:
        log.warning("ui-proxy transport failure: %s", type(e).__name__, extra=where)
        return Err("internal")
    ms = round((time.monotonic() - started) * 1000, 1)
    if not 200 <= status < 300:
        log.warning("ui-proxy answered %s", status, extra={**where, "status": status, "ms": ms})
        return Err(map_status(status))
    log.info("ui-proxy", extra={**where, "status": status, "ms": ms, "bytes": len(body)})
    return body


def from_routes_file(ctx: CallContext, route: str, payload: bytes | None):
    """The developer's routes file answers instead of a host application (standalone mode)."""
    try:
        method, path, found = ctx.host.ui_proxy_routes.answer(route, payload)
    except RoutesFileError as e:
        log.error("ui-proxy: %s", e, extra=ctx.log_extra)
        return Err("internal")
    where = {**ctx.log_extra, "route": path, "method": method}
    if found is None:
        log.warning("ui-proxy: no entry for %s %s in UI_PROXY_ROUTES_FILE", method, path, extra=where)
        return Err("route-not-found")
    log.info("ui-proxy (routes file)", extra={**where, "status": found.status, "bytes": len(found.body)})
    return found.body if 200 <= found.status < 300 else Err(map_status(found.status))


def map_status(status: int) -> str:
    if status in (401, 403, 429):
        return "denied"
    if status == 404:
        return "route-not-found"
    if 400 <= status < 500:
        return "bad-request"
    return "internal"


class SameOriginSession(requests.Session):
    """Follows redirects (as the reference's client does) but drops credentials on a new origin."""

    def __init__(self) -> None:
        super().__init__()
        self.max_redirects = 10

    def rebuild_auth(self, prepared_request, response):
        old, new = urlsplit(response.request.url), urlsplit(prepared_request.url)
        if (old.scheme, old.hostname, old.port) != (new.scheme, new.hostname, new.port):
            for name in _SECRET_HEADERS:
                prepared_request.headers.pop(name, None)
        super().rebuild_auth(prepared_request, response)


INTERFACES = {"alga:extension/ui-proxy": {"call-route": call_route}}
