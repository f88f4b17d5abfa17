"""Header values of /ext-ui answers (reference §3.3, DECISIONS 8). Stdlib only."""
from __future__ import annotations

DEFAULT_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
               "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'")
IMMUTABLE = "public, max-age=31536000, immutable"  # only on 200/206/304 asset answers
NO_STORE = "no-store"  # everything else
NOSNIFF = ("X-Content-Type-Options", "nosniff")
# Module scripts (and fonts, fetch()) are CORS requests. From an iframe sandboxed without
# allow-same-origin they come with `Origin: null` and without credentials, so every asset must
# allow that origin. "*" is right for these answers: they are public (anyone with the URL gets the
# same bytes, no cookie or per-origin state decides anything), and a constant value needs no
# `Vary: Origin`, so a shared cache keeps one copy. Errors, 304, 206 and 416 carry it too: without
# it the page sees a CORS failure instead of the real status. GET module scripts are simple
# requests, so there is no preflight (OPTIONS is not answered).
CORS_ANY = ("Access-Control-Allow-Origin", "*")


def _valid_header_value(value: str) -> bool:
    return all(c == "\t" or 0x20 <= ord(c) < 0x7F for c in value)


def content_security_policy(csp_override: str, frame_ancestors: str) -> str:
    """EXT_UI_CONTENT_SECURITY_POLICY replaces the default; else EXT_UI_FRAME_ANCESTORS is appended."""
    csp_override, frame_ancestors = csp_override.strip(), frame_ancestors.strip()
    if csp_override:
        return csp_override if _valid_header_value(csp_override) else DEFAULT_CSP
    if frame_ancestors:
        value = f"{DEFAULT_CSP}; frame-ancestors {frame_ancestors}"
        return value if _valid_header_value(value) else DEFAULT_CSP
    return DEFAULT_CSP


def etag(file_hex: str, encoding: str = "") -> str:
    """Strong validator from the file's SHA-256; each precompressed variant gets its own suffix."""
    return f'"sha256-{file_hex}-{encoding}"' if encoding else f'"sha256-{file_hex}"'
