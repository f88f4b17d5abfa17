"""Blueprint: POST /v1/execute and the health probes (/healthz, /livez, /readyz)."""
from __future__ import annotations

import hmac
import time

from flask import Blueprint, Response, current_app, jsonify, request

import metrics

from runner.contract import RequestRejected, parse_execute
from runner.pool import RunnerBusy

bp = Blueprint("runner", __name__)

STORE_PROBE_TTL_S = 5.0


@bp.after_request
def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/v1/execute")
def execute():
    settings = current_app.extensions["settings"]
    if settings.service_token and not _authorized(settings.service_token):
        return jsonify(error="unauthorized", message="missing or wrong runner service token"), 401
    try:
        req = parse_execute(request.content_type, request.get_data(cache=False))
    except RequestRejected as e:
        return jsonify(e.body()), e.status
    try:
        outcome = current_app.extensions["executor"].execute(request.headers, req)
    except RunnerBusy:
        response = jsonify(error="runner_busy")
        response.status_code = 503
        response.headers["Retry-After"] = "1"
        return response
    return jsonify(outcome)


def _authorized(token: str) -> bool:
    given = request.headers.get("x-runner-service-token", "")
    auth = request.headers.get("authorization", "")
    if not given and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    return hmac.compare_digest(given.encode(), token.encode())


@bp.route("/healthz", methods=["GET", "HEAD"])
def healthz():
    """Reference §1.2: 200 while the cache is writable; the store result is informative."""
    settings = current_app.extensions["settings"]
    bundles = current_app.extensions["bundles"]
    writable = bundles.is_writable()
    body = {"cache_writable": writable, "bundle_store": _store_status(),
            "ext_cache_max_bytes": None if settings.cache_max_bytes is None else str(settings.cache_max_bytes)}
    return jsonify(body), 200 if writable else 503


@bp.route("/livez", methods=["GET", "HEAD"])
def livez():
    return jsonify(status="ok")


@bp.route("/readyz", methods=["GET", "HEAD"])
def readyz():
    """Ready = not draining, cache writable, bundle store reachable, every worker alive."""
    pool = current_app.extensions["executor"].pool
    if not current_app.extensions.get("draining"):
        pool.start()
    checks = {
        "draining": bool(current_app.extensions.get("draining")),
        "cache_writable": current_app.extensions["bundles"].is_writable(),
        "bundle_store": _store_status(),
        "workers": pool.alive_workers(),
    }
    ready = (not checks["draining"] and checks["cache_writable"] and checks["bundle_store"] == "ok"
             and checks["workers"] == current_app.extensions["settings"].workers)
    return jsonify(ready=ready, **checks), 200 if ready else 503


@bp.get("/metrics")
def prometheus_metrics():
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)


def _store_status() -> str:
    """The bundle store probe, remembered for a few seconds so probes stay cheap."""
    cached = current_app.extensions.setdefault("store_probe", {"at": 0.0, "status": "ok"})
    if time.monotonic() - cached["at"] > STORE_PROBE_TTL_S:
        cached["status"] = current_app.extensions["bundles"].probe_store()
        cached["at"] = time.monotonic()
    return cached["status"]
