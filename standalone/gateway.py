"""``/api/ext/<extension>/<path>`` and ``/api/ext-proxy/...``: the Alga gateway, in standalone mode.

What the Alga gateway does in front of the reference runner (reference §2.13,
§7.5), against the SQLite registry: resolve the tenant and its enabled
install, enforce the manifest's ``api.endpoints``, build the /v1/execute
request the gateway would send, run it in-process, and answer with the
guest's status, body and allow-listed headers. :func:`build_request` and
:func:`execute` are shared with the scheduler.
"""
from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from flask import Blueprint, Flask, Response, request

from runner.contract import parse_execute
from runner.executor import Executor
from runner.policy.capabilities import DEFAULTS, known_only
from runner.pool import RunnerBusy
from runner.views import runner_busy
from service.errors import json_error
from standalone import method_override
from storage.registry.installs import Install, Registry, RegistryError
from storage.registry.secrets import SecretsStore

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
MAX_BODY_BYTES = 10 * 1024 * 1024  # the Alga gateway's cap
DEV_USER = {"user_id": "dev-user", "user_email": "dev@localhost", "user_name": "Developer",
            "user_type": "internal", "client_name": "Standalone"}
_DROPPED_HEADERS = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                    "trailers", "transfer-encoding", "upgrade", "cookie", "authorization", "content-length"}
_RESPONSE_HEADERS = {"content-type", "cache-control", "etag"}


def match_endpoint(endpoints: list[dict], method: str, path: str) -> dict | None:
    """The declared endpoint for ``method path``: same method, same segments, ``:name`` matches any one."""
    wanted = [s for s in path.split("/") if s]
    for endpoint in endpoints:
        if endpoint.get("method", "").upper() != method:
            continue
        pattern = [s for s in endpoint.get("path", "").split("/") if s]
        if len(pattern) == len(wanted) and all(p.startswith(":") or p == w for p, w in zip(pattern, wanted)):
            return endpoint
    return None


def providers(install: Install) -> list[str]:
    """What Alga grants (reference §7.5): manifest + granted + configured, known names only, plus defaults."""
    return sorted(known_only([*install.capabilities, *install.granted_caps, *install.config_providers]) | DEFAULTS)


def build_request(install: Install, *, method: str, path: str, query: dict[str, str], headers: dict[str, str],
                  body: bytes | None, request_id: str, idempotency_key: str | None, timeout_ms: int,
                  secret_envelope: dict | None, user: dict | None, context_extra: dict | None = None
                  ) -> tuple[dict[str, str], dict[str, Any]]:
    """The routing headers and JSON body of the /v1/execute call for ``install``."""
    routing = {"x-request-id": request_id, "x-alga-tenant": install.tenant_id,
               "x-alga-extension": install.registry_id}
    if idempotency_key:
        routing["x-idempotency-key"] = idempotency_key
    doc: dict[str, Any] = {
        "context": {"request_id": request_id, "tenant_id": install.tenant_id, "extension_id": install.registry_id,
                    "install_id": install.id, "content_hash": install.content_hash,
                    "version_id": install.version_id, "config": install.config, **(context_extra or {})},
        "http": {"method": method, "path": path, "query": query,
                 "headers": {**headers, "x-alga-tenant": install.tenant_id, "x-alga-extension": install.registry_id},
                 "body_b64": None if body is None else base64.b64encode(body).decode("ascii")},
        "limits": {"timeout_ms": timeout_ms},
        "providers": providers(install),
    }
    if secret_envelope:
        doc["secret_envelope"] = secret_envelope
    if user:
        doc["user"] = user
    return routing, doc


def execute(executor: Executor, routing: dict[str, str], doc: dict[str, Any]) -> dict:
    """Run the request through the same parser /v1/execute uses. Raises RunnerBusy."""
    return executor.execute(routing, parse_execute("application/json", json.dumps(doc).encode("utf-8")))


def init_app(app: Flask, *, registry: Registry, secrets: SecretsStore, executor: Executor, default_tenant: str,
             timeout_ms: int) -> None:
    app.register_blueprint(_blueprint(registry, secrets, executor, default_tenant, timeout_ms))


def _blueprint(registry: Registry, secrets: SecretsStore, executor: Executor, default_tenant: str,
               timeout_ms: int) -> Blueprint:
    bp = Blueprint("gateway", __name__)

    def forward(extension_id: str, path: str):
        # A page on another site could otherwise make the browser run endpoints (a form POST needs no CORS).
        # Browsers always send Sec-Fetch-Site; curl and server-to-server callers do not.
        if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
            return json_error(403, "cross_site_request", "extension endpoints refuse cross-site browser requests")
        tenant = (request.headers.get("x-alga-tenant") or request.args.get("tenant") or default_tenant).strip()
        try:
            install = registry.find(tenant, extension_id)
        except RegistryError as e:
            return json_error(409, "ambiguous_extension", str(e))
        if install is None or not install.content_hash:
            return json_error(404, "extension_not_available", f"{extension_id!r} is not installed for tenant {tenant}")
        if not install.enabled:
            return json_error(403, "extension_disabled", f"{install.name} is disabled for tenant {tenant}; "
                                                         f"enable it with: flask ext enable {install.name} --tenant {tenant}")
        method, path = request.method.upper(), "/" + path
        body = None if method == "GET" else request.get_data(cache=False)
        if body is not None and len(body) > MAX_BODY_BYTES:
            return json_error(413, "payload_too_large", f"request bodies are limited to {MAX_BODY_BYTES} bytes")
        query = dict(request.args.items(multi=True))
        if request.endpoint == "gateway.ext_proxy":
            method, query, body = method_override.apply(method, query, body)
        if match_endpoint(install.api_endpoints, method, path) is None:
            return json_error(404, "endpoint_not_found", f"{method} {path} is not in the manifest's api.endpoints")
        request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
        routing, doc = build_request(
            install, method=method, path=path, query=query,
            headers=_forwarded_headers(), body=body, request_id=request_id,
            idempotency_key=None if method == "GET" else request.headers.get("x-idempotency-key") or request_id,
            timeout_ms=timeout_ms, secret_envelope=secrets.envelope(install), user=DEV_USER)
        try:
            outcome = execute(executor, routing, doc)
        except RunnerBusy:
            return runner_busy()
        if outcome["error"] or not 100 <= outcome["status"] <= 599:
            error = outcome["error"] or f"invalid guest status {outcome['status']}"
            return json_error(502, "bad_gateway", error, code=error.split(":", 1)[0])
        return _guest_response(outcome)

    # One endpoint per prefix: rules of one endpoint with defaults would redirect to each other.
    for prefix, endpoint in (("/api/ext", "ext"), ("/api/ext-proxy", "ext_proxy")):
        bp.add_url_rule(f"{prefix}/<extension_id>/", endpoint, forward, defaults={"path": ""}, methods=METHODS,
                        strict_slashes=False)
        bp.add_url_rule(f"{prefix}/<extension_id>/<path:path>", endpoint, forward, methods=METHODS)
    return bp


def _forwarded_headers() -> dict[str, str]:
    """Request headers for the guest: hop-by-hop, cookies and credentials dropped, names lower-cased."""
    named_hop = {h.strip().lower() for h in request.headers.get("connection", "").split(",")}
    out: dict[str, str] = {}
    for name, value in request.headers.items():
        name = name.lower()
        if name not in _DROPPED_HEADERS and name not in named_hop:
            out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def _guest_response(outcome: dict) -> Response:
    headers = {k.lower(): v for k, v in outcome["headers"].items()
               if k.lower() in _RESPONSE_HEADERS or k.lower().startswith("x-ext-")}
    headers.setdefault("content-type", "application/octet-stream")
    headers.setdefault("cache-control", "no-store")
    body = base64.b64decode(outcome["body_b64"]) if outcome["body_b64"] else b""
    response = Response(body, status=outcome["status"])
    response.headers.clear()
    response.headers.update(headers)
    response.headers["Content-Length"] = str(len(body))
    return response
