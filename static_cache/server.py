"""/ext-ui/<extension>/<hash>/<path> at the WSGI level (reference §3.1, in order).

``StaticUi.serve`` answers from the WSGI environ and returns ``(status, headers, body)``;
the Flask view (views.py) and the ``fast_path`` middleware only adapt that. The
middleware serves GET/HEAD /ext-ui before Flask, as WhiteNoise does, because Flask's
own per-request work costs more than the whole lookup.

Once a bundle's index is loaded, small files are answered from memory (bounded by
EXT_STATIC_MEMORY_BYTES) without touching the bundle cache: their paths are under a
content-addressed folder, so a kept copy never goes stale. Larger files are sent with
sendfile(2), also under gevent (``_gevent_sendfile``).
"""
from __future__ import annotations

import io
import json
import os
import re
import sys
import threading
from urllib.parse import parse_qs
from wsgiref.util import FileWrapper

import cachetools

from service import metrics
from service.wsgi import STATUS_LINES, yield_if_gevent
from static_cache import index as ui_index
from static_cache.headers import CORS_ANY, NO_STORE, content_security_policy
from static_cache.paths import sanitize
from static_cache.settings import StaticSettings
from static_cache.tenancy import Tenancy
from storage.alga.installs import host_without_port
from storage.bundles.cache import ArchiveHashMismatch, BundleCache, BundleError, SignatureRejected

_HASH = re.compile(r"sha256:([0-9a-fA-F]+)\Z")
PREFIXES = ("/ext-ui/", "/runner/ext-ui/")
CHUNK = 1 << 16
# Files up to this size are read in one call, sent in one piece and kept in memory;
# larger ones are sent from the file.
INLINE_MAX_BYTES = 256 << 10
MAX_INDEXES = 256  # loaded bundle indexes kept per process


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


_STATUS_LABELS = {status: str(status) for status in STATUS_LINES}


def _count(status: int, headers, body) -> None:
    metrics.labelled(metrics.STATIC_RESPONSES, _STATUS_LABELS[status]).inc()
    if body is not None:
        for name, value in headers:
            if name == "Content-Length":
                metrics.STATIC_BYTES.inc(int(value))
                break


class _Lru:
    """A thread-safe least-recently-used map; ``getsizeof`` bounds it by size instead of count."""

    def __init__(self, maxsize: int, getsizeof=None):
        self._items = cachetools.LRUCache(max(1, maxsize), getsizeof)
        self._lock = threading.Lock()
        self.maxsize = maxsize

    def get(self, key):
        with self._lock:
            return self._items.get(key)

    def put(self, key, value) -> None:
        if self.maxsize <= 0 or (self._items.getsizeof(value) > self.maxsize):
            return
        with self._lock:
            self._items[key] = value


class StaticUi:
    def __init__(self, settings: StaticSettings, bundles: BundleCache, tenancy: Tenancy, compress: bool):
        """:param compress: offer precompressed variants (``StaticSettings.compress``)."""
        self.bundles = bundles
        self.compress = compress
        self.tenancy = tenancy
        self.max_bytes = settings.static_max_file_bytes
        self.csp = content_security_policy(settings.ui_csp, settings.ui_frame_ancestors)
        self.indexes = _Lru(MAX_INDEXES)  # hex hash -> UiIndex
        self.memory = _Lru(settings.static_memory_bytes, len)  # file path -> bytes

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
        index = self.indexes.get(hex_hash)
        if index is not None:  # loaded before: answered from memory when nothing must be read from disk
            answer = self._answer(environ, index, tail, from_disk=False)
            if answer is not None:
                return answer
        try:
            with self.bundles.use(hex_hash):
                cached = self.bundles.ensure(tenant or "", extension_id, hex_hash)
                try:
                    index = self._load_index(hex_hash, cached.root)
                except (ValueError, KeyError, TypeError):  # a corrupt ui-index.json; OSError is below
                    return EXTRACT_FAILED
                return self._answer(environ, index, tail, from_disk=True)
        except ArchiveHashMismatch:
            return HASH_MISMATCH
        except SignatureRejected as e:  # SIGNING_TRUST_BUNDLE is set and the bundle's signature fails
            return _fixed(502, json.dumps({"code": "signature_rejected", "message": e.reason}).encode(),
                          "application/json")
        except (BundleError, OSError):
            return EXTRACT_FAILED

    def _load_index(self, hex_hash: str, root) -> ui_index.UiIndex:
        index = self.indexes.get(hex_hash)
        if index is None:
            index = ui_index.load(root, self.csp, self.compress)
            self.indexes.put(hex_hash, index)
        return index

    def _answer(self, environ: dict, index: ui_index.UiIndex, tail: str, from_disk: bool):
        """The answer; None when it needs a file that is not in memory and ``from_disk`` is false."""
        rel = sanitize(tail)
        if rel is None:
            return BAD_PATH
        found = index.find(rel)
        if found is None:
            return NOT_FOUND
        if self.max_bytes is not None and found.size > self.max_bytes:
            return TOO_LARGE
        answer = found.get_response(environ.get("HTTP_IF_NONE_MATCH"), environ.get("HTTP_ACCEPT_ENCODING"),
                                    environ.get("HTTP_RANGE"))
        if answer.path is None or environ["REQUEST_METHOD"] == "HEAD":
            return answer.status, answer.headers, None
        data = self.memory.get(answer.path)
        if data is not None:
            if answer.window is not None:
                start, length = answer.window
                data = data[start:start + length]
            return answer.status, answer.headers, data
        if not from_disk:
            return None
        try:
            f = open(answer.path, "rb")  # while pinned: eviction cannot remove it first
        except OSError:  # listed in the index but removed from disk behind our back
            return SERVER_ERROR
        if answer.window is not None:
            return answer.status, answer.headers, Window(f, *answer.window)
        if found.size <= INLINE_MAX_BYTES:
            with f:
                data = f.read()
            self.memory.put(answer.path, data)
            return answer.status, answer.headers, data
        return answer.status, answer.headers, f

    def fast_path(self, wrapped):
        """WSGI middleware: GET/HEAD /ext-ui answered here; everything else goes to ``wrapped``."""
        _install_gevent_sendfile()

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


def _install_gevent_sendfile() -> None:
    """Gunicorn sends file bodies with ``socket.sendfile``, which gevent implements as a Python loop
    of 8 KiB read+send pairs; replace it with sendfile(2) that waits cooperatively when the socket
    is full."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("socket"):
        from gevent import socket as gevent_socket

        gevent_socket.socket.sendfile = _gevent_sendfile


def _gevent_sendfile(self, file, offset: int = 0, count: int | None = None) -> int:
    from gevent.socket import wait_write

    self._check_sendfile_params(file, offset, count)
    try:
        in_fd = file.fileno()
    except (AttributeError, io.UnsupportedOperation):
        return self._sendfile_use_send(file, offset, count)
    out_fd = self.fileno()
    if not count:
        count = max(0, os.fstat(in_fd).st_size - offset)
    sent = 0
    try:
        while sent < count:
            try:
                n = os.sendfile(out_fd, in_fd, offset + sent, count - sent)
            except BlockingIOError:
                wait_write(out_fd, timeout=self.timeout)
                continue
            if n == 0:  # the file is shorter than count
                break
            sent += n
    finally:
        if sent:
            file.seek(offset + sent)
    return sent


def split_path(path_info: str) -> tuple[str, str, str] | None:
    """(extension id, content hash, tail) of an /ext-ui path, as the Flask route would capture them."""
    for prefix in PREFIXES:
        if path_info.startswith(prefix):
            parts = path_info[len(prefix):].split("/", 2)
            if len(parts) == 3 and all(parts):
                if path_info.isascii():
                    return parts[0], parts[1], parts[2]
                # WSGI gives PATH_INFO as latin-1; the URL bytes are UTF-8 (werkzeug decodes the same way)
                return tuple(p.encode("latin-1", "replace").decode("utf-8", "replace") for p in parts)
    return None
