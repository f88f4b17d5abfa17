"""``/api/ext/<extension>/<path>`` and ``/api/ext-proxy/<extension>/<path>``: Alga's two gateways, standalone.

What Alga's server does in front of the runner, against the SQLite registry: resolve the tenant
and its enabled install, enforce the manifest's ``api.endpoints``, build the /v1/execute request
that gateway builds, run it in-process and answer as that gateway answers. The two differ, and
each is followed (notes: Alga's ``api/ext`` and ``api/ext-proxy`` routes):

- ``/api/ext`` (the main gateway): the guest sees only ``x-request-id``, ``accept``,
  ``content-type``, ``accept-encoding`` and ``user-agent``; the user has ``company_name``;
  non-GET calls carry an idempotency key (the caller's or the request id); bodies over 10 MiB
  are refused with 413. The browser gets the guest's status and body but the *runner's*
  headers (``content-type: application/json``, ``cache-control``), never the guest's.
- ``/api/ext-proxy`` (the iframe bridge's route): a ``POST`` may name another method with
  ``__method`` (query first, then a JSON body's key, which is then removed); the guest also gets
  ``x-alga-*``, ``x-idempotency-key`` (non-GET, fresh unless given), ``http.url``, ``endpoint``,
  and a user with ``client_name`` and ``additional_fields``. The browser gets the guest's
  ``content-type``, ``cache-control``, ``x-ext-request-id`` and ``x-ext-warning`` only.

Both refuse a runner that answers badly with ``{"error": "bad_gateway", "requestId": ...}``:
502 on ``/api/ext``; on ``/api/ext-proxy`` the runner's own HTTP status. :func:`build_request`
and :func:`execute` are shared with the scheduler.
"""
from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, request

from runner import contract
from runner.contract import parse_execute
from runner.executor import Executor
from runner.policy.capabilities import DEFAULTS, known_only
from runner.pool import RunnerBusy
from service.errors import NO_STORE, json_error
from standalone import method_override
from storage.registry.installs import Install, Registry, RegistryError
from storage.registry.secrets import SecretsStore

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
MAX_BODY_BYTES = 10 * 1024 * 1024  # the main gateway's cap (ext-proxy has none; the runner's own limit applies)
DEV_USER = {"user_id": "dev-user", "user_email": "dev@localhost", "user_name": "Developer",
            "user_type": "internal", "client_name": "Standalone"}
MAIN_REQUEST_HEADERS = ("x-request-id", "accept", "content-type", "accept-encoding", "user-agent")
PROXY_REQUEST_HEADERS = ("accept", "content-type", "accept-encoding", "user-agent", "x-request-id",
                         "x-alga-tenant", "x-alga-extension", "x-idempotency-key")
PROXY_RESPONSE_HEADERS = ("content-type", "cache-control", "x-ext-request-id", "x-ext-warning")
# What /v1/execute itself answers with: the main gateway copies these (and etag) to the browser.
RUNNER_HEADERS = {"content-type": "application/json", "cache-control": NO_STORE}
NO_BODY_STATUSES = (204, 205, 304)


class TooLarge(Exception):
    """The /v1/execute body would be over the runner's EXT_MAX_REQUEST_BYTES."""


def match_endpoint(endpoints: list[dict], method: str, path: str) -> dict | None:
    """The declared endpoint for ``method path``, matched as Alga's gateway matches.

    HEAD endpoints count as GET and OPTIONS ones are never reachable; both sides are trimmed of
    surrounding slashes and split on ``/``; the segment counts must agree; a ``:name`` segment
    matches any non-empty segment, any other must be equal."""
    wanted = path.strip().strip("/").split("/")
    for endpoint in endpoints:
        declared = str(endpoint.get("method", "")).upper()
        declared = "GET" if declared == "HEAD" else declared
        if declared not in METHODS or declared != method:
            continue
        pattern = str(endpoint.get("path", "")).strip().strip("/").split("/")
        if len(pattern) == len(wanted) and all(
                (p.startswith(":") and w) or p == w for p, w in zip(pattern, wanted)):
            return endpoint
    return None


def providers(install: Install) -> list[str]:
    """What Alga grants (reference §7.5): manifest + granted + configured, known names only, plus defaults."""
    return sorted(known_only([*install.capabilities, *install.granted_caps, *install.config_providers]) | DEFAULTS)


def build_request(install: Install, *, method: str, path: str, query: dict[str, str], headers: dict[str, str],
                  body: bytes | None, request_id: str, idempotency_key: str | None, timeout_ms: int,
                  secret_envelope: dict | None, user: dict | None, context_extra: dict | None = None,
                  http_extra: dict | None = None, extra: dict | None = None
                  ) -> tuple[dict[str, str], dict[str, Any]]:
    """The routing headers and JSON body of the /v1/execute call for ``install``.

    ``http_extra`` and ``extra`` add keys to ``http`` and to the top level (the ext-proxy's
    ``http.url`` and ``endpoint``)."""
    routing = {"x-request-id": request_id, "x-alga-tenant": install.tenant_id,
               "x-alga-extension": install.registry_id}
    if idempotency_key:
        routing["x-idempotency-key"] = idempotency_key
    http: dict[str, Any] = {"method": method, **(http_extra or {}), "path": path, "query": query,
                            "headers": {**headers, "x-alga-tenant": install.tenant_id,
                                        "x-alga-extension": install.registry_id}}
    if body is not None:
        http["body_b64"] = base64.b64encode(body).decode("ascii")
    doc: dict[str, Any] = {
        "context": {"request_id": request_id, "tenant_id": install.tenant_id, "extension_id": install.registry_id,
                    "install_id": install.id, "content_hash": install.content_hash,
                    "version_id": install.version_id, "config": install.config, **(context_extra or {})},
        "http": http,
        "limits": {"timeout_ms": timeout_ms},
        "providers": providers(install),
        **(extra or {}),
    }
    if secret_envelope:
        doc["secret_envelope"] = secret_envelope
    if user:
        doc["user"] = user
    return routing, doc


def execute(executor: Executor, routing: dict[str, str], doc: dict[str, Any], max_bytes: int | None = None) -> dict:
    """Run the request through the same parser /v1/execute uses. Raises RunnerBusy, TooLarge."""
    raw = json.dumps(doc).encode("utf-8")
    if max_bytes is not None and len(raw) > max_bytes:
        raise TooLarge(f"the request is {len(raw)} bytes of JSON; the runner takes at most {max_bytes}")
    return executor.execute(routing, parse_execute("application/json", raw))


@dataclass(frozen=True)
class Call:
    """One browser request, as the gateway forwards it."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes | None
    request_id: str


def init_app(app: Flask, *, registry: Registry, secrets: SecretsStore, executor: Executor, default_tenant: str,
             timeout_ms: int, max_request_bytes: int) -> None:
    app.register_blueprint(_Gateway(registry, secrets, executor, default_tenant, timeout_ms,
                                    max_request_bytes).blueprint())


@dataclass
class _Gateway:
    registry: Registry
    secrets: SecretsStore
    executor: Executor
    default_tenant: str
    timeout_ms: int
    max_request_bytes: int

    def blueprint(self) -> Blueprint:
        bp = Blueprint("gateway", __name__)
        # One endpoint per prefix: rules of one endpoint with defaults would redirect to each other.
        for prefix, endpoint, view in (("/api/ext", "ext", self.main), ("/api/ext-proxy", "ext_proxy", self.proxy)):
            bp.add_url_rule(f"{prefix}/<extension_id>/", endpoint, view, defaults={"path": ""}, methods=METHODS,
                            strict_slashes=False)
            bp.add_url_rule(f"{prefix}/<extension_id>/<path:path>", endpoint, view, methods=METHODS)
        return bp

    def main(self, extension_id: str, path: str):
        method = request.method.upper()
        body = None if method == "GET" else request.get_data(cache=False)
        if body is not None and len(body) > MAX_BODY_BYTES:
            return json_error(413, "payload_too_large", f"request bodies are limited to {MAX_BODY_BYTES} bytes")
        call = Call(method, "/" + path, dict(request.args.items(multi=True)), body, _request_id())
        install, refused = self._resolve(extension_id, call)
        if refused is not None:
            return refused
        headers = {n: request.headers[n] for n in MAIN_REQUEST_HEADERS if n in request.headers}
        idempotency = None if method == "GET" else request.headers.get("x-idempotency-key") or call.request_id
        user = {k: v for k, v in DEV_USER.items() if k != "client_name"} | {"company_name": DEV_USER["client_name"]}
        routing, doc = self._request(install, call, headers, idempotency, user)
        outcome, failed = self._run(routing, doc, call.request_id, proxy=False)
        if failed is not None:
            return failed
        status, body = outcome["status"], _decoded(outcome["body_b64"]) or None
        if not 200 <= status <= 599 or (status in NO_BODY_STATUSES and body):
            return _bad_gateway(502, call.request_id, f"the guest answered status {status} with that body")
        return _reply(status, body, RUNNER_HEADERS, outcome["error"])

    def proxy(self, extension_id: str, path: str):
        query = dict(request.args.items(multi=True))
        method, body = request.method.upper(), request.get_data(cache=False)
        method, query, body = method_override.apply(method, query, body)
        call = Call(method, "/" + path, query, None if method == "GET" else body, _request_id())
        install, refused = self._resolve(extension_id, call)
        if refused is not None:
            return refused
        headers = {n: request.headers[n] for n in PROXY_REQUEST_HEADERS if n in request.headers}
        headers["x-request-id"] = call.request_id
        if method != "GET":
            headers["x-idempotency-key"] = request.headers.get("x-idempotency-key") or str(uuid.uuid4())
        user = {**DEV_USER, "additional_fields": {}}
        routing, doc = self._request(install, call, headers, None, user, http_extra={"url": call.path},
                                     extra={"endpoint": f"ui-proxy:{call.path}"})
        outcome, failed = self._run(routing, doc, call.request_id, proxy=True)
        if failed is not None:
            return failed
        status, body = outcome["status"], _decoded(outcome["body_b64"])
        if not 200 <= status <= 599 or (status in NO_BODY_STATUSES and body is not None):
            return json_error(503, "access_policy_unavailable",
                              f"the guest answered status {status} with a body, which no response can carry")
        headers = {k.lower(): v for k, v in outcome["headers"].items() if k.lower() in PROXY_RESPONSE_HEADERS}
        return _reply(status, body, headers, outcome["error"])

    def _resolve(self, extension_id: str, call: Call) -> tuple[Install | None, Response | None]:
        """The enabled install the call may reach, or the refusal."""
        # A page on another site could otherwise make the browser run endpoints (a form POST needs no CORS).
        # Browsers always send Sec-Fetch-Site; curl and server-to-server callers do not.
        if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
            return None, json_error(403, "cross_site_request", "extension endpoints refuse cross-site browser requests")
        tenant = (request.headers.get("x-alga-tenant") or request.args.get("tenant") or self.default_tenant).strip()
        try:
            install = self.registry.find(tenant, extension_id)
        except RegistryError as e:
            return None, json_error(409, "ambiguous_extension", str(e))
        if install is None or not install.content_hash:
            return None, json_error(404, "extension_not_available",
                                    f"{extension_id!r} is not installed for tenant {tenant}")
        if not install.enabled:
            return None, json_error(403, "extension_disabled", f"{install.name} is disabled for tenant {tenant}; "
                                    f"enable it with: flask ext enable {install.name} --tenant {tenant}")
        access = "GET" if call.method == "HEAD" else call.method  # Alga serves HEAD as GET
        if match_endpoint(install.api_endpoints, access, call.path) is None:
            return None, json_error(404, "endpoint_not_found",
                                    f"{call.method} {call.path} is not in the manifest's api.endpoints")
        return install, None

    def _request(self, install: Install, call: Call, headers: dict, idempotency: str | None, user: dict,
                 **extras: Any) -> tuple[dict[str, str], dict[str, Any]]:
        return build_request(install, method=call.method, path=call.path, query=call.query, headers=headers,
                             body=call.body, request_id=call.request_id, idempotency_key=idempotency,
                             timeout_ms=self.timeout_ms, secret_envelope=self.secrets.envelope(install), user=user,
                             **extras)

    def _run(self, routing: dict, doc: dict, request_id: str, proxy: bool) -> tuple[dict | None, Response | None]:
        """The runner's envelope, or the bad_gateway answer for a runner that did not give one.

        ``proxy``: ext-proxy repeats the runner's HTTP status (busy 503, too large 413); the
        main gateway always says 502. A timeout is the gateway's own abort: 502 on both."""
        try:
            outcome = execute(self.executor, routing, doc, self.max_request_bytes)
        except RunnerBusy:
            return None, _bad_gateway(503 if proxy else 502, request_id, "every runner worker is busy; retry shortly")
        except TooLarge as e:
            return None, _bad_gateway(413 if proxy else 502, request_id, str(e))
        if (outcome["error"] or "").startswith(f"{contract.EXECUTE_FAILED}: timeout"):
            return None, _bad_gateway(502, request_id, f"no answer within {self.timeout_ms} ms")
        return outcome, None


def _request_id() -> str:
    return request.headers.get("x-request-id") or str(uuid.uuid4())


def _decoded(body_b64: str | None) -> bytes | None:
    return None if body_b64 is None else base64.b64decode(body_b64)


def _bad_gateway(status: int, request_id: str, message: str) -> Response:
    return json_error(status, "bad_gateway", message, requestId=request_id)


def _reply(status: int, body: bytes | None, headers: dict[str, str], runner_error: str | None) -> Response:
    """The browser's answer. A runner error (execute_failed, ...) arrives as Alga shows it, the
    envelope's status without a body, plus the error text in ``x-runner-error`` (standalone only)."""
    response = Response(body or b"", status=status)
    response.headers.clear()
    response.headers.update(headers)
    if runner_error:
        response.headers["x-runner-error"] = runner_error.replace("\r", " ").replace("\n", " ")[:500]
    response.headers["Content-Length"] = str(len(body or b""))
    return response
