"""ui-proxy answered from a routes file (``UI_PROXY_ROUTES_FILE``), standalone mode without a host app.

Extensions that call platform APIs through ``ui-proxy.call-route`` (nineminds-reporting) can be
developed without an Alga server: the developer writes what those APIs answer. The file is a
JSON object, tried in order, first match wins::

    {
      "GET /api/v1/platform-reports":        {"json": {"data": []}},
      "POST /api/v1/platform-reports":       {"status": 201, "json": {"report_id": "r-1"}},
      "/api/v1/platform-reports/:id":        {"json": {"report_id": "r-1", "name": "Usage"}},
      "/api/v1/platform-feature-flags/*":    {"status": 404, "json": {"error": "not here"}},
      "/health":                             {"body": "ok"}
    }

A key is ``[METHOD ]/route``: the route as the extension passes it (its query string is not
matched), ``:name`` matching one segment and a final ``*`` any number of them; no method means any. The
method of a call is the payload's JSON ``__method`` when it has one (the platform APIs' own
convention), else POST with a payload and GET without. A value gives ``status`` (default 200)
and ``json`` (any JSON) or ``body`` (text). A 2xx answer is the body's bytes; any other status
is the proxy error an HTTP answer of that status gives (404 ``route-not-found``, 401/403/429
``denied``, other 4xx ``bad-request``, else ``internal``); no match is ``route-not-found``.
The file is read again whenever it changes.
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("runner.worker.host.ui_proxy")

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_KEY = re.compile(r"(?:([A-Za-z]+)\s+)?(/\S*)")


class RoutesFileError(Exception):
    """The routes file can not be used; the message names the file and the entry."""


@dataclass(frozen=True)
class Route:
    method: str | None
    segments: tuple[str, ...]
    status: int
    body: bytes

    def matches(self, method: str, segments: list[str]) -> bool:
        if self.method is not None and self.method != method:
            return False
        pattern = self.segments
        if pattern and pattern[-1] == "*":
            return len(segments) >= len(pattern) - 1 and _same(pattern[:-1], segments[:len(pattern) - 1])
        return len(pattern) == len(segments) and _same(pattern, segments)


def _same(pattern: tuple[str, ...], segments: list[str]) -> bool:
    return all((p.startswith(":") and s) or p == s for p, s in zip(pattern, segments))


def _segments(route: str) -> list[str]:
    path = route.partition("?")[0].strip().strip("/")
    return path.split("/") if path else []


def parse(text: str, where: str) -> list[Route]:
    """The routes of a file's text; RoutesFileError names the first bad entry."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise RoutesFileError(f"{where} is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise RoutesFileError(f"{where} must be a JSON object of \"[METHOD ]/route\": {{status, json | body}}")
    return [_route(key, value, f"{where}: {key!r}") for key, value in doc.items()]


def _route(key: str, value, where: str) -> Route:
    m = _KEY.fullmatch(key.strip())
    if m is None or (m.group(1) and m.group(1).upper() not in METHODS):
        raise RoutesFileError(f"{where}: the key must be \"/route\" or \"METHOD /route\" ({', '.join(METHODS)})")
    if not isinstance(value, dict) or set(value) - {"status", "json", "body"} or {"json", "body"} <= set(value):
        raise RoutesFileError(f"{where}: the value must be an object {{\"status\": 200, \"json\": ...}} "
                              "or {\"status\": 200, \"body\": \"text\"}")
    status = value.get("status", 200)
    if type(status) is not int or not 100 <= status <= 599:
        raise RoutesFileError(f"{where}: status must be a number from 100 to 599")
    if "body" in value and not isinstance(value["body"], str):
        raise RoutesFileError(f"{where}: body must be text (use json for JSON)")
    body = value["body"].encode() if "body" in value else json.dumps(value.get("json")).encode() \
        if "json" in value else b""
    return Route(m.group(1).upper() if m.group(1) else None, tuple(_segments(m.group(2))), status, body)


class RoutesFile:
    """The routes of ``path``, parsed again when the file changes."""

    def __init__(self, path: str):
        self.path = Path(path)
        self._seen: tuple[int, int] | None = None
        self._routes: list[Route] = []

    def routes(self) -> list[Route]:
        try:
            stat = os.stat(self.path)
        except OSError as e:
            raise RoutesFileError(f"UI_PROXY_ROUTES_FILE {self.path} can not be read: {e.strerror}") from None
        if (stat.st_mtime_ns, stat.st_size) != self._seen:
            self._routes = parse(self.path.read_text(encoding="utf-8"), f"UI_PROXY_ROUTES_FILE {self.path}")
            self._seen = (stat.st_mtime_ns, stat.st_size)
        return self._routes

    def answer(self, route: str, payload: bytes | None) -> tuple[str, str, Route | None]:
        """(method, path, the matching route or None); RoutesFileError for an unusable file."""
        method = call_method(payload)
        segments = _segments(route)
        found = next((r for r in self.routes() if r.matches(method, segments)), None)
        return method, "/" + "/".join(segments), found


def call_method(payload: bytes | None) -> str:
    if payload is None:
        return "GET"
    try:
        doc = json.loads(payload)
    except ValueError:
        return "POST"
    wanted = doc.get("__method") if isinstance(doc, dict) else None
    return wanted.upper() if isinstance(wanted, str) and wanted.upper() in METHODS else "POST"
