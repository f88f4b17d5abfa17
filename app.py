"""Composition root: ``create_app()`` builds the service from the environment.

``flask --app app run`` and ``gunicorn 'app:create_app()'`` both use it. The
factory only wires things together; each package owns its logic. Shared
objects live in ``app.extensions`` under plain names ("settings", "bundles",
"executor", ...), so views reach them without importing one another.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Mapping

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

import logs
from settings import Settings, unknown_names

log = logging.getLogger("app")


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. ``test_config`` overrides settings by attribute name."""
    settings = Settings.from_env(os.environ, **dict(test_config or {}))
    logs.configure(settings.log_level)
    for name in unknown_names(os.environ):
        log.warning("unknown setting %s is ignored (typo?)", name, extra={"setting": name})

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False
    app.extensions["settings"] = settings

    from storage.bundles import BundleCache
    from runner.executor import Executor
    from runner import views as runner_views

    bundles = BundleCache(settings)
    app.extensions["bundles"] = bundles
    app.extensions["executor"] = Executor(settings, bundles)

    app.register_blueprint(runner_views.bp)
    app.register_error_handler(HTTPException, _http_error)
    return app


def _http_error(e: HTTPException):
    """Router and framework errors as JSON, never HTML."""
    response = jsonify(error=(e.name or "error").lower().replace(" ", "_"), message=e.description)
    response.status_code = e.code or 500
    if e.code == 405 and e.valid_methods:
        response.headers["Allow"] = ", ".join(e.valid_methods)
    response.headers["Cache-Control"] = "no-store"
    return response
