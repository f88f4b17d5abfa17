"""Gunicorn's own error answers (a request it refuses before the app sees it: a header over
``limit_request_field_size``, more than ``limit_request_fields`` headers, a request line over
``limit_request_line``, a malformed request) in the service's one JSON error shape, same status.

Gunicorn's worker maps every such failure to a status, reason and message in
``Worker.handle_error`` and writes them with ``gunicorn.util.write_error``, its only
writer of error pages; :func:`install` replaces that writer, so the mapping stays Gunicorn's.
"""
from __future__ import annotations

import json

from gunicorn import util

from service.errors import NO_STORE


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """Same signature as ``gunicorn.util.write_error``."""
    body = json.dumps({"error": reason.lower().replace(" ", "_"), "message": mesg or reason}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Cache-Control: {NO_STORE}\r\nContent-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


def install() -> None:
    util.write_error = write_json_error
