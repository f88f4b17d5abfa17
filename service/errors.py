"""The one JSON error shape of every route: ``{"error": code, "message": text, ...}``, never cached."""
from __future__ import annotations

from typing import Any

import orjson
from flask import Response
from werkzeug.exceptions import HTTPException

NO_STORE = "no-store"


def error_document(error: str, message: str, **extra: Any) -> bytes:
    """The JSON body of an error; answers written before Flask (runner.views) use it directly."""
    return orjson.dumps({"error": error, "message": message, **extra})


def error_code(e: HTTPException) -> str:
    """``Request Entity Too Large`` -> ``request_entity_too_large``."""
    return (e.name or "error").lower().replace(" ", "_")


def json_error(status: int, error: str, message: str, **extra: Any) -> Response:
    return Response(error_document(error, message, **extra), status, [("Cache-Control", NO_STORE)],
                    mimetype="application/json")


def http_error(e: HTTPException) -> Response:
    """Router and framework errors (404, 405, 413, ...) as JSON, never HTML."""
    response = json_error(e.code or 500, error_code(e), e.description or "")
    if e.code == 405 and getattr(e, "valid_methods", None):
        response.headers["Allow"] = ", ".join(e.valid_methods)
    return response
