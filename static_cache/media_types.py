"""The reference MIME table (§3.2, mime_guess 2.0.5): the essence only, never a charset."""
from __future__ import annotations

from static_cache.paths import extension

MEDIA_TYPES = {
    "html": "text/html",
    "js": "text/javascript",
    "css": "text/css",
    "json": "application/json",
    "map": "text/plain",
    "svg": "image/svg+xml",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "woff": "font/woff",
    "woff2": "font/woff2",
}
DEFAULT = "application/octet-stream"


def media_type(path: str) -> str:
    return MEDIA_TYPES.get(extension(path), DEFAULT)
