"""Composition root: ``create_app()`` builds the service from the environment.

``flask --app app run`` and ``gunicorn 'app:create_app()'`` both use it. The factory
reads the settings once, builds each package's objects and hands them to the package's
``init_app``; it owns no logic. Background work (the worker pool, the Redis publisher,
the scheduler loop) is registered with one :class:`Lifecycle`, which Gunicorn's hooks
start and stop (gunicorn.conf.py); without Gunicorn the first request starts it.
"""
from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from typing import Any, Mapping

from flask import Flask
from werkzeug.exceptions import HTTPException

import openapi
import runner.views
import standalone.wiring
import static_cache.views
from runner.debug.publisher import RedisPublisher
from runner.debug.stream import DebugStream
from runner.executor import Executor
from runner.messages import WorkerConfig
from runner.pool import Pool
from runner.replays import replay_store
from service import logs
from service.errors import http_error
from service.lifecycle import Lifecycle
from settings import Settings, unknown_names
from static_cache import index as ui_index
from static_cache.server import StaticUi
from static_cache.tenancy import Tenancy
from storage.alga.installs import AlgaInstalls
from storage.bundles.cache import BundleCache

log = logging.getLogger("app")


@dataclass
class Service:
    """The objects of one app, for Gunicorn's hooks and tests (``app.extensions["alga_runner"]``)."""

    settings: Settings
    lifecycle: Lifecycle
    bundles: BundleCache
    debug: DebugStream
    executor: Executor
    standalone: standalone.wiring.Standalone


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. ``test_config`` overrides settings by attribute name."""
    settings = Settings.from_env(os.environ, **dict(test_config or {}))
    log_format = logs.configure(settings.service.log_level, settings.service.log_format)
    for name in unknown_names(os.environ):
        log.warning("unknown setting %s is ignored (typo?)", name, extra={"setting": name})

    app = Flask(__name__, static_folder=None)  # every static file has its own route
    app.config["MAX_CONTENT_LENGTH"] = settings.runner.max_request_bytes
    app.json.sort_keys = False
    app.register_error_handler(HTTPException, http_error)

    lifecycle = Lifecycle()
    attached = settings.alga.attached
    compress_ui = settings.static.compress(attached)
    bundles = BundleCache(settings.bundles, on_extract=functools.partial(ui_index.build, compress=compress_ui))
    publisher = RedisPublisher.from_settings(settings.runner)
    debug = DebugStream(settings.runner, redis_publisher=publisher)
    pool = Pool(WorkerConfig(settings.runner, settings.alga, settings.registry, settings.service.log_level,
                             log_format))
    replays = replay_store(settings.runner.shared_redis_url, settings.runner.idempotency_max_entries,
                           settings.runner.idempotency_ttl_s)
    executor = Executor(settings.runner, bundles, debug, pool, replays)
    lifecycle.add(pool)
    if publisher is not None:
        lifecycle.add(publisher)

    installs = AlgaInstalls(settings.alga)
    runner.views.init_app(app, settings=settings.runner, executor=executor, bundles=bundles, lifecycle=lifecycle,
                          lookup_host=installs.lookup_host if installs.configured else None)
    local = standalone.wiring.init_app(app, service=settings.service, registry=settings.registry,
                                standalone=settings.standalone, runner=settings.runner, bundles=bundles,
                                executor=executor, debug=debug, lifecycle=lifecycle, serve=not attached)
    tenancy = Tenancy(settings.static.static_strict_validation,
                      installs.validate if attached else local.registry.validate_ui,
                      installs.lookup_host if installs.configured else None,
                      "" if attached else settings.registry.default_tenant)
    static_cache.views.init_app(app, StaticUi(settings.static, bundles, tenancy, compress_ui))
    openapi.init_app(app)  # last: it describes the routes registered above

    app.before_request(lifecycle.start)  # flask run and test clients; a no-op once started
    app.extensions["alga_runner"] = Service(settings, lifecycle, bundles, debug, executor, local)
    return app


def service_of(app: Flask) -> Service:
    return app.extensions["alga_runner"]
