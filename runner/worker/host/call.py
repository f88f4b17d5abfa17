"""What host functions see: the worker's :class:`HostState` and the execution's :class:`CallContext`.

As in Spin, state with three lifetimes: settings and clients built once per worker
(HostState: the egress policy, the internal API of the Alga server or of the
standalone registry, HTTP sessions), and per execution a CallContext (ids, grants,
secrets, user, deadline) that travels as the Store's data. Host functions take a
CallContext and can be called without wasm in tests.
"""
from __future__ import annotations

import concurrent.futures
import functools
import logging
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from runner.messages import ExecutionIds, WorkerConfig
from runner.policy.capabilities import DEFAULTS
from runner.policy.egress import Policy
from runner.settings import RunnerSettings
from runner.worker.host.ui_proxy_routes import RoutesFile
from service.logs import LEVELS
from storage.api import InternalApi

log = logging.getLogger("ext")


class HostState:
    """:param api: the Alga server's /api/internal/ext-* (attached) or the SQLite registry's (standalone)."""

    def __init__(self, settings: RunnerSettings, api: InternalApi, ui_proxy_routes: RoutesFile | None = None):
        self.settings = settings
        self.api = api
        self.egress = Policy(settings.egress_allowlist)
        self.ui_proxy_routes = ui_proxy_routes  # standalone, with UI_PROXY_ROUTES_FILE

    @classmethod
    def build(cls, config: WorkerConfig) -> "HostState":
        """The state of one worker process: attached or standalone is decided here, once."""
        if config.alga.attached:
            from storage.alga.internal_api import AlgaInternalApi

            api: InternalApi = AlgaInternalApi(config.alga)
        else:
            from storage.registry.internal_api import LocalInternalApi

            api = LocalInternalApi(config.registry.registry_db, config.runner.storage_max_value_bytes)
        routes_file = config.runner.ui_proxy_routes_file
        routes = RoutesFile(routes_file) if routes_file and not config.alga.attached else None
        return cls(config.runner, api, routes)

    @functools.cached_property
    def dns(self) -> concurrent.futures.ThreadPoolExecutor:
        """Resolves http.fetch host names with a deadline (getaddrinfo itself has none)."""
        return concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="egress-dns")

    @functools.cached_property
    def tls(self) -> ssl.SSLContext:
        """Outbound TLS (system trust store, hostname checked); loading the CA bundle takes tens of ms."""
        return ssl.create_default_context()

    @functools.cached_property
    def ui_proxy_session(self) -> requests.Session:
        from runner.worker.host.ui_proxy import SameOriginSession

        return SameOriginSession()


@dataclass
class CallContext:
    host: HostState
    ids: ExecutionIds
    grants: frozenset[str] = DEFAULTS
    secrets: dict[str, str] | None = None  # None: the request carried no envelope
    user: dict[str, Any] | None = None
    deadline: float = field(default_factory=lambda: time.monotonic() + 30)
    events: list[dict[str, Any]] = field(default_factory=list)
    fetches: int = 0

    @property
    def settings(self) -> RunnerSettings:
        return self.host.settings

    @property
    def log_extra(self) -> dict[str, str]:
        return self.ids.fields()

    def allows(self, capability: str) -> bool:
        return capability in self.grants

    def remaining(self, cap_seconds: float) -> float:
        """Seconds a host call may still take: its own cap, but never past the deadline."""
        return max(0.05, min(cap_seconds, self.deadline - time.monotonic()))

    def api(self, area: str, operation: str, payload: dict[str, Any], cap_seconds: float = 30.0) -> Any:
        """One internal-API operation for this execution's install; raises storage.api.ApiError."""
        return self.host.api.call(area, operation, payload, tenant=self.ids.tenant, install=self.ids.install or "",
                                  timeout_s=self.remaining(cap_seconds), log_extra=self.log_extra)

    def emit(self, level: str, stream: str, message: str) -> None:
        """A guest log line: written now as JSON, and kept for the debug stream."""
        log.log(LEVELS.get(level, logging.INFO), message, extra={"stream": stream, **self.log_extra})
        self.events.append({"ts": int(time.time() * 1000), "level": level, "stream": stream, "message": message})
