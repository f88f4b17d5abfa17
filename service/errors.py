"""The one JSON error shape of every route: ``{"error": code, "message": text, ...}``, never cached."""
from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from werkzeug.exceptions import HTTPException

NO_STORE = "no-store"


def json_error(status: int, error: str, message: str, **extra: Any) -> Response:
    response = jsonify(error=error, message=message, **extra)
    response.status_code = status
    response.headers["Cache-Control"] = NO_STORE
    return response


def http_error(e: HTTPException) -> Response:
    """Router and framework errors (404, 405, 413, ...) as JSON, never HTML."""
    response = json_error(e.code or 500, (e.name or "error").lower().replace(" ", "_"), e.description or "")
    if e.code == 405 and getattr(e, "valid_methods", None):
        response.headers["Allow"] = ", ".join(e.valid_methods)
    return response
