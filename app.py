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
    from runner.debug_redis import RedisPublisher
    from runner.debug_stream import DebugStream
    from runner.executor import Executor
    from runner import views as runner_views
    from host_page import views as host_page_views
    from static_cache import index as ui_index
    from static_cache import views as static_views

    bundles = BundleCache(settings, on_extract=ui_index.build)
    app.extensions["bundles"] = bundles
    debug = DebugStream(settings, redis_publisher=RedisPublisher.from_settings(settings))
    app.extensions["debug"] = debug
    app.extensions["executor"] = Executor(settings, bundles, debug=debug)
    _standalone(app, settings)

    app.register_blueprint(runner_views.bp)
    if settings.standalone:  # attached mode: the Alga app is the host page
        app.register_blueprint(host_page_views.bp)
    app.register_blueprint(static_views.bp)  # after _standalone(): it reads app.extensions["ui_validate"]
    app.register_error_handler(HTTPException, _http_error)
    # /ext-ui GET/HEAD are answered before Flask, as WhiteNoise does: a dictionary lookup and a file.
    app.wsgi_app = app.extensions["static_ui"].fast_path(app.wsgi_app)
    return app


def _standalone(app: Flask, settings: Settings) -> None:
    """The SQLite registry, its admin commands, and in standalone mode the gateway route, the
    registry-backed /ext-ui validation and the scheduler (not inside `flask ext ...` commands)."""
    import click

    from runner import gateway
    from runner.schedule_runner import ScheduleRunner
    from storage import cli as ext_cli
    from storage.registry import Registry
    from storage.secrets_store import SecretsStore

    registry = Registry(settings.registry_db, settings.default_tenant)
    app.extensions["registry"] = registry
    app.extensions["secrets"] = SecretsStore(registry, settings.secrets_key_file)
    app.cli.add_command(ext_cli.ext)
    if not settings.standalone:
        return
    app.extensions["ui_validate"] = registry.validate_ui  # read by static_cache when it registers
    app.register_blueprint(gateway.bp)
    scheduler = ScheduleRunner(settings, registry, app.extensions["secrets"], app.extensions["executor"])
    app.extensions["scheduler"] = scheduler
    command = click.get_current_context(silent=True)
    if settings.scheduler_enabled and (command is None or command.info_name == "run"):
        scheduler.start()


def _http_error(e: HTTPException):
    """Router and framework errors as JSON, never HTML."""
    response = jsonify(error=(e.name or "error").lower().replace(" ", "_"), message=e.description)
    response.status_code = e.code or 500
    if e.code == 405 and e.valid_methods:
        response.headers["Allow"] = ", ".join(e.valid_methods)
    response.headers["Cache-Control"] = "no-store"
    return response
