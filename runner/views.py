"""The reference runner's own routes: POST /v1/execute, POST /warmup, GET / (per-install hosts),
and the probes /healthz, /livez, /readyz and /metrics."""
from __future__ import annotations

import hmac
import json
import time
from typing import Callable
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, jsonify, request

from runner.contract import RequestRejected, parse_execute
from runner.executor import Executor
from runner.pool import RunnerBusy
from runner.settings import RunnerSettings
from service import metrics
from service.errors import NO_STORE, json_error
from service.lifecycle import Lifecycle
from storage.alga.installs import InstallLookupFailed, host_without_port
from storage.bundles.cache import BundleCache

STORE_PROBE_TTL_S = 5.0
HostLookup = Callable[[str], "dict | None"]


def init_app(app: Flask, *, settings: RunnerSettings, executor: Executor, bundles: BundleCache,
             lifecycle: Lifecycle, lookup_host: HostLookup | None) -> None:
    """:param lookup_host: maps a Host header to ``{tenant_id, extension_id, content_hash}`` (attached mode)."""
    app.register_blueprint(_blueprint(settings, executor, bundles, lifecycle, lookup_host))


def runner_busy() -> Response:
    response = json_error(503, "runner_busy", "every worker is busy; retry shortly")
    response.headers["Retry-After"] = "1"
    return response


def _blueprint(settings: RunnerSettings, executor: Executor, bundles: BundleCache, lifecycle: Lifecycle,
               lookup_host: HostLookup | None) -> Blueprint:
    bp = Blueprint("runner", __name__)
    probe = _StoreProbe(bundles)

    @bp.after_request
    def _no_store(response):
        response.headers["Cache-Control"] = NO_STORE
        return response

    @bp.post("/v1/execute")
    def execute():
        if settings.inbound_token and not _authorized(settings.inbound_token):
            return json_error(401, "unauthorized", "missing or wrong runner service token")
        try:
            req = parse_execute(request.content_type, request.get_data(cache=False))
        except RequestRejected as e:
            return jsonify(e.body()), e.status
        try:
            return jsonify(executor.execute(request.headers, req))
        except RunnerBusy:
            return runner_busy()

    @bp.post("/warmup")
    def warmup():
        """Always 400 once the body parses, as the reference (axum's extractor texts before that)."""
        if request.mimetype != "application/json":
            return _text(415, "Expected request with `Content-Type: application/json`")
        try:
            body = json.loads(request.get_data(cache=False))
        except ValueError as e:
            return _text(400, f"Failed to parse the request body as JSON: {e}")
        if not isinstance(body, dict) or not isinstance(body.get("content_hash"), str):
            return _text(422, "Failed to deserialize the JSON body into the target type: "
                              "content_hash: a string is required")
        return _text(400, "warmup unsupported without tenant + extension context")

    @bp.route("/", methods=["GET", "HEAD"])
    def host_dispatch():
        """307 to the UI of the install mapped to this Host (per-install domains, reference §1.3)."""
        host = host_without_port(request.headers.get("Host", ""))
        if not host:
            return _empty(400)
        if lookup_host is None:
            return _empty(503)
        try:
            found = lookup_host(host)
        except InstallLookupFailed:
            return _empty(502)
        if found is None:
            return _empty(404)
        query = urlencode({"tenant": found["tenant_id"], "extensionId": found["extension_id"]})
        return _empty(307, ("Location", f"/ext-ui/{found['extension_id']}/{found['content_hash']}/index.html?{query}"))

    @bp.route("/healthz", methods=["GET", "HEAD"])
    def healthz():
        """Reference §1.2: 200 while the cache is writable; the store result is informative."""
        writable = bundles.is_writable()
        body = {"cache_writable": writable, "bundle_store": probe.status(),
                "ext_cache_max_bytes": None if bundles.settings.cache_max_bytes is None
                else str(bundles.settings.cache_max_bytes)}
        return jsonify(body), 200 if writable else 503

    @bp.route("/livez", methods=["GET", "HEAD"])
    def livez():
        return jsonify(status="ok")

    @bp.route("/readyz", methods=["GET", "HEAD"])
    def readyz():
        """Ready = not draining, cache writable, bundle store reachable, every worker alive."""
        checks = {"draining": lifecycle.draining, "cache_writable": bundles.is_writable(),
                  "bundle_store": probe.status(), "workers": executor.pool.alive_workers()}
        ready = (not checks["draining"] and checks["cache_writable"] and checks["bundle_store"] == "ok"
                 and checks["workers"] == settings.workers)
        return jsonify(ready=ready, **checks), 200 if ready else 503

    @bp.get("/metrics")
    def prometheus_metrics():
        body, content_type = metrics.render()
        return Response(body, content_type=content_type)

    return bp


class _StoreProbe:
    """The bundle store probe, remembered for a few seconds so probes stay cheap."""

    def __init__(self, bundles: BundleCache):
        self.bundles = bundles
        self.at = 0.0
        self.last = "ok"

    def status(self) -> str:
        if time.monotonic() - self.at > STORE_PROBE_TTL_S:
            self.last = self.bundles.probe_store()
            self.at = time.monotonic()
        return self.last


def _authorized(token: str) -> bool:
    given = request.headers.get("x-runner-service-token", "")
    auth = request.headers.get("authorization", "")
    if not given and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    return hmac.compare_digest(given.encode(), token.encode())


class _Bare(Response):
    default_mimetype = None  # no Content-Type unless one is given


def _empty(status: int, *headers: tuple[str, str]) -> Response:
    return _Bare(b"", status, [*headers, ("Cache-Control", NO_STORE)])


def _text(status: int, text: str) -> Response:
    return Response(text, status, [("Cache-Control", NO_STORE)], content_type="text/plain; charset=utf-8")
