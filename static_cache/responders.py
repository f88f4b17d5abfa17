"""Precomputed answers for one UI file, WhiteNoise-style. Stdlib only.

Everything that depends only on the file (headers, ETags, the 304 answer, the
precompressed variants) is built once when the index is loaded. Per request only
the method, If-None-Match, Accept-Encoding and Range are looked at.
"""
from __future__ import annotations

from static_cache.headers import CORS_ANY, IMMUTABLE, NO_STORE, NOSNIFF

Headers = list[tuple[str, str]]


class Response:
    """A neutral answer: ``path`` is the file to send (None: no body); ``window`` is (start, length) for 206."""

    __slots__ = ("status", "headers", "path", "window")

    def __init__(self, status: int, headers: Headers, path: str | None = None, window: tuple[int, int] | None = None):
        self.status, self.headers, self.path, self.window = status, headers, path, window


class Representation:
    """One encoding of a file (identity, gzip or br) with its ready headers."""

    __slots__ = ("path", "size", "etag", "ok_headers", "not_modified")

    def __init__(self, path: str, size: int, etag: str, base: Headers, not_modified: Headers):
        self.path, self.size, self.etag = path, size, etag
        self.ok_headers = [*base, ("Content-Length", str(size)), ("ETag", etag)]
        self.not_modified = Response(304, [("ETag", etag), *not_modified])


class StaticFile:
    __slots__ = ("size", "identity", "variants", "_range_base")

    def __init__(self, path: str, size: int, media_type: str, etag: str, csp: str | None,
                 variants: list[tuple[str, str, int, str]] = ()):
        """:param variants: (encoding, path, size, etag) of precompressed copies, best first."""
        self.size = size
        vary = [("Vary", "Accept-Encoding")] if variants else []
        csp_header = [("Content-Security-Policy", csp)] if csp else []
        common_304 = [("Cache-Control", IMMUTABLE), CORS_ANY, *csp_header, *vary]
        base = [("Content-Type", media_type), ("Cache-Control", IMMUTABLE), NOSNIFF, CORS_ANY, *csp_header, *vary]
        self.identity = Representation(path, size, etag, [*base, ("Accept-Ranges", "bytes")], common_304)
        self.variants = [(enc, Representation(p, n, tag, [*base, ("Content-Encoding", enc)], common_304))
                         for enc, p, n, tag in variants]
        self._range_base = [*base, ("Accept-Ranges", "bytes"), ("ETag", etag)]

    def get_response(self, if_none_match: str | None, accept_encoding: str | None,
                     range_header: str | None) -> Response:
        rep = self.identity
        if self.variants and accept_encoding and not range_header:
            accepted = _accepted_codings(accept_encoding)
            for enc, variant in self.variants:
                if enc in accepted or "*" in accepted:
                    rep = variant
                    break
        if if_none_match and _etag_matches(if_none_match, rep.etag):
            return rep.not_modified
        if range_header:
            window = parse_range(range_header, self.size)
            if window == "unsatisfiable":
                return Response(416, [("Content-Range", f"bytes */{self.size}"), ("Cache-Control", NO_STORE), CORS_ANY])
            if window is not None:
                start, length = window
                return Response(206, [*self._range_base, ("Content-Length", str(length)),
                                      ("Content-Range", f"bytes {start}-{start + length - 1}/{self.size}")],
                                rep.path, window)
        return Response(200, rep.ok_headers, rep.path)


def _etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison is not used: ``W/`` validators never match (reference §3.1 step 10)."""
    return any(c.strip() in (etag, "*") for c in if_none_match.split(","))


def _accepted_codings(header: str) -> set[str]:
    accepted = set()
    for item in header.split(","):
        coding, _, params = item.partition(";")
        params = params.replace(" ", "")
        if params.startswith("q="):
            try:
                if float(params[2:]) <= 0:
                    continue
            except ValueError:
                continue
        accepted.add(coding.strip().lower())
    return accepted


def parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """(start, length) for one satisfiable ``bytes=`` range, ``"unsatisfiable"``, or None to ignore it
    (several ranges, other units, bad syntax: the whole file is sent)."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or (not first and last.isdigit())) or (last and not last.isdigit()):
        return None
    if not first:  # suffix: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            return "unsatisfiable"
        n = min(n, size)
        return size - n, n
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        return "unsatisfiable"
    return start, min(end, size - 1) - start + 1
