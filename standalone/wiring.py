"""Standalone mode in an app: :func:`init_app` and the :class:`Standalone` state the commands use."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from flask import Flask

from runner.debug.stream import DebugStream
from runner.executor import Executor
from runner.settings import RunnerSettings
from service.lifecycle import Lifecycle
from service.progress import QUIET, Progress
from service.settings import ServiceSettings
from standalone.host_page.views import HostPage
from standalone.installer import Installer, public_base
from standalone.scheduler import ScheduleLoop
from standalone.settings import StandaloneSettings
from storage.bundles.cache import BundleCache
from storage.bundles.signing import load_private_key
from storage.registry.installs import Registry
from storage.registry.secrets import SecretsStore
from storage.registry.settings import RegistrySettings


@dataclass
class Standalone:
    """The registry and what works with it, for the ``flask ext`` commands (``app.extensions["standalone"]``)."""

    registry: Registry
    secrets: SecretsStore
    bundles: BundleCache
    executor: Executor
    debug: DebugStream
    lifecycle: Lifecycle
    runner: RunnerSettings
    default_tenant: str
    public_base: str
    scheduler: ScheduleLoop | None = None  # standalone mode; it runs by itself with EXT_SCHEDULER_ENABLED
    host_page: HostPage | None = None  # standalone mode


    def installer(self, progress: Progress = QUIET) -> Installer:
        """Raises ValueError when EXT_SIGNING_KEY_FILE is set but holds no usable key."""
        settings = self.bundles.settings
        key = load_private_key(settings.signing_key_file) if settings.signing_key_file else None
        return Installer(self.registry, self.bundles.store, settings.bundle_store_base, self.executor,
                         self.default_tenant, self.public_base, progress, settings.max_archive_bytes, key)


def init_app(app: Flask, *, service: ServiceSettings, registry: RegistrySettings, standalone: StandaloneSettings,
             runner: RunnerSettings, bundles: BundleCache, executor: Executor, debug: DebugStream,
             lifecycle: Lifecycle, serve: bool) -> Standalone:
    """The ``flask ext`` commands always; with ``serve`` (no Alga server attached) also the gateway, the
    host page and the scheduler loop."""
    from standalone import cli, gateway, publish
    from standalone.host_page import views as host_page

    db = Registry(registry.registry_db, registry.default_tenant)
    state = Standalone(db, SecretsStore(db, registry.secrets_key_file), bundles, executor, debug, lifecycle, runner,
                       registry.default_tenant, public_base(service.host, service.port))
    app.extensions["standalone"] = state
    app.cli.add_command(cli.ext)
    if serve:
        gateway.init_app(app, registry=db, secrets=state.secrets, executor=executor,
                         default_tenant=registry.default_tenant, timeout_ms=standalone.gateway_timeout_ms,
                         max_request_bytes=runner.max_request_bytes)
        state.host_page = HostPage(db, debug, lifecycle, registry.default_tenant, standalone.ui_bridge_any_origin,
                                   standalone.ui_sandbox)
        host_page.init_app(app, state.host_page)
        state.scheduler = ScheduleLoop(db, state.secrets, executor, standalone.scheduler_tick_ms,
                                       standalone.gateway_timeout_ms)
        if standalone.scheduler_enabled:
            lifecycle.add(state.scheduler)
        publish.init_app(app, publish.PublishApi(
            state, standalone.publish_api_key, min(publish.ALGA_MAX_BYTES, bundles.settings.max_archive_bytes),
            Path(registry.registry_db).resolve().parent / "staging", bundles.limits))
    return state
