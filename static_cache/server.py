"""/ext-ui/<extension>/<hash>/<path> at the WSGI level (reference §3.1, in order).

``StaticUi.serve`` answers from the WSGI environ and returns ``(status, headers, body)``;
the Flask view (views.py) and the ``fast_path`` middleware only adapt that. The
middleware serves GET/HEAD /ext-ui before Flask, as WhiteNoise does, because Flask's
own per-request work costs more than the whole lookup.
"""
from __future__ import annotations

import re
from urllib.parse import parse_qs
from wsgiref.util import FileWrapper

from service import metrics
from service.wsgi import STATUS_LINES, yield_if_gevent
from static_cache import index as ui_index
from static_cache.headers import CORS_ANY, NO_STORE, content_security_policy
from static_cache.paths import sanitize
from static_cache.settings import StaticSettings
from static_cache.tenancy import Tenancy
from storage.alga.installs import host_without_port
from storage.bundles.cache import ArchiveHashMismatch, BundleCache, BundleError

_HASH = re.compile(r"sha256:([0-9a-fA-F]+)\Z")
PREFIXES = ("/ext-ui/", "/runner/ext-ui/")
CHUNK = 1 << 16
# Smaller files are read in one call and sent in one piece. Under gevent, gunicorn's
# "sendfile" is a Python loop of 8 KiB read+send pairs, so one read is cheaper.
INLINE_MAX_BYTES = 256 << 10


def _fixed(status: int, body: bytes = b"", content_type: str | None = None) -> tuple[int, list, bytes]:
    headers = [("Content-Type", content_type)] if content_type else []
    return status, [*headers, ("Cache-Control", NO_STORE), CORS_ANY, ("Content-Length", str(len(body)))], body


def _text(status: int, text: str):
    return _fixed(status, text.encode(), "text/plain; charset=utf-8")


def _json(status: int, code: str):
    return _fixed(status, b'{"code":"%s"}' % code.encode(), "application/json")


BAD_HASH = _text(400, "invalid content hash")
BAD_PATH = _text(400, "invalid path")
TOO_LARGE = _text(413, "asset too large")
NOT_FOUND = _fixed(404)
SERVER_ERROR = _fixed(500)
HASH_MISMATCH = _json(502, "archive_hash_mismatch")
EXTRACT_FAILED = _json(500, "extract_failed")


class Window:
    """The bytes [start, start + length) of an open file (a 206 body)."""

    def __init__(self, f, start: int, length: int):
        self.f, self.start, self.length = f, start, length

    def __iter__(self):
        self.f.seek(self.start)
        left = self.length
        while left > 0 and (chunk := self.f.read(min(left, CHUNK))):
            left -= len(chunk)
            yield chunk

    def close(self) -> None:
        self.f.close()


# labels() takes a lock and a lookup per call: resolve each status's child once.
_STATUS_COUNTERS: dict[int, object] = {}


def _count(status: int, headers, body) -> None:
    counter = _STATUS_COUNTERS.get(status)
    if counter is None:
        counter = _STATUS_COUNTERS[status] = metrics.STATIC_RESPONSES.labels(str(status))
    counter.inc()
    if body is not None:
        metrics.STATIC_BYTES.inc(next((int(v) for k, v in headers if k == "Content-Length"), 0))


class StaticUi:
    def __init__(self, settings: StaticSettings, bundles: BundleCache, tenancy: Tenancy, compress: bool):
        """:param compress: offer precompressed variants (``StaticSettings.compress``)."""
        self.bundles = bundles
        self.compress = compress
        self.tenancy = tenancy
        self.max_bytes = settings.static_max_file_bytes
        self.csp = content_security_policy(settings.ui_csp, settings.ui_frame_ancestors)

    def serve(self, environ: dict, extension_id: str, content_hash: str, tail: str):
        """``(status, headers, body)``; body is bytes, None (HEAD), an open file (large) or a Window (206)."""
        status, headers, body = self._serve(environ, extension_id, content_hash, tail)
        _count(status, headers, body)
        return status, headers, body

    def _serve(self, environ: dict, extension_id: str, content_hash: str, tail: str):
        m = _HASH.match(content_hash)
        if m is None:
            return BAD_HASH
        hex_hash = m.group(1).lower()
        query = environ.get("QUERY_STRING", "")
        query_tenant = parse_qs(query).get("tenant", [""])[0] if "tenant=" in query else None
        tenant = self.tenancy.resolve(query_tenant, environ.get("HTTP_X_TENANT_ID"), extension_id, content_hash,
                                      hex_hash, host_without_port(environ.get("HTTP_HOST", "")))
        if self.tenancy.strict and (not tenant or not self.tenancy.allowed(tenant, extension_id, content_hash)):
            return NOT_FOUND
        if len(hex_hash) != 64:  # no bundle has this name: the reference's download would fail
            return EXTRACT_FAILED
        try:
            with self.bundles.use(hex_hash):
                cached = self.bundles.ensure(tenant or "", extension_id, hex_hash)
                return self._answer(environ, cached, tail)
        except ArchiveHashMismatch:
            return HASH_MISMATCH
        except (BundleError, OSError):
            return EXTRACT_FAILED

    def _answer(self, environ: dict, cached, tail: str):
        rel = sanitize(tail)
        if rel is None:
            return BAD_PATH
        if cached.ui_index is None:
            try:
                cached.ui_index = ui_index.load(cached.root, self.csp, self.compress)
            except (ValueError, KeyError, TypeError):  # a corrupt ui-index.json; OSError is the caller's
                return EXTRACT_FAILED
        found = cached.ui_index.find(rel)
        if found is None:
            return NOT_FOUND
        if self.max_bytes is not None and found.size > self.max_bytes:
            return TOO_LARGE
        answer = found.get_response(environ.get("HTTP_IF_NONE_MATCH"), environ.get("HTTP_ACCEPT_ENCODING"),
                                    environ.get("HTTP_RANGE"))
        if answer.path is None or environ["REQUEST_METHOD"] == "HEAD":
            return answer.status, answer.headers, None
        try:
            f = open(answer.path, "rb")  # while pinned: eviction cannot remove it first
        except OSError:  # listed in the index but removed from disk behind our back
            return SERVER_ERROR
        if answer.window is not None:
            return answer.status, answer.headers, Window(f, *answer.window)
        if found.size <= INLINE_MAX_BYTES:
            with f:
                return answer.status, answer.headers, f.read()
        return answer.status, answer.headers, f

    def fast_path(self, wrapped):
        """WSGI middleware: GET/HEAD /ext-ui answered here; everything else goes to ``wrapped``."""

        def app(environ, start_response):
            if environ["REQUEST_METHOD"] in ("GET", "HEAD"):
                parts = split_path(environ.get("PATH_INFO", ""))
                if parts is not None:
                    yield_if_gevent()
                    status, headers, body = self.serve(environ, *parts)
                    start_response(STATUS_LINES[status], list(headers))  # the server may not mutate ours
                    if body is None:
                        return []
                    if isinstance(body, bytes):
                        return [body]
                    if isinstance(body, Window):
                        return body
                    return environ.get("wsgi.file_wrapper", FileWrapper)(body, CHUNK)
            return wrapped(environ, start_response)

        return app


def split_path(path_info: str) -> tuple[str, str, str] | None:
    """(extension id, content hash, tail) of an /ext-ui path, as the Flask route would capture them."""
    for prefix in PREFIXES:
        if path_info.startswith(prefix):
            parts = path_info[len(prefix):].split("/", 2)
            if len(parts) == 3 and all(parts):
                # WSGI gives PATH_INFO as latin-1; the URL bytes are UTF-8 (werkzeug decodes the same way)
                return tuple(p.encode("latin-1", "replace").decode("utf-8", "replace") for p in parts)
    return None
