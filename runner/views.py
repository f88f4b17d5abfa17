"""The reference runner's own routes: POST /v1/execute, POST /warmup, GET / (per-install hosts),
and the probes /healthz, /livez, /readyz and /metrics.

POST /v1/execute is answered at the WSGI level, before Flask's routing (as /ext-ui is):
Flask's request context, routing and response object cost more than the contract itself.
The Flask route stays for the URL map (GET answers 405) and gives the same answers.
"""
from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Mapping
from typing import Callable, Iterator
from urllib.parse import urlencode

import orjson
from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

from runner.contract import RequestRejected, parse_execute
from runner.executor import Executor
from runner.pool import RunnerBusy
from runner.settings import RunnerSettings
from service import metrics
from service.errors import NO_STORE, error_code, error_document
from service.lifecycle import Lifecycle
from service.wsgi import STATUS_LINES
from storage.alga.installs import InstallLookupFailed, host_without_port
from storage.bundles.cache import BundleCache

log = logging.getLogger(__name__)

STORE_PROBE_TTL_S = 5.0
EXECUTE_PATH = "/v1/execute"
HostLookup = Callable[[str], "dict | None"]
Answer = tuple[int, list[tuple[str, str]], bytes]


def init_app(app: Flask, *, settings: RunnerSettings, executor: Executor, bundles: BundleCache,
             lifecycle: Lifecycle, lookup_host: HostLookup | None) -> None:
    """:param lookup_host: maps a Host header to ``{tenant_id, extension_id, content_hash}`` (attached mode)."""
    endpoint = ExecuteEndpoint(settings, executor, lifecycle)
    app.register_blueprint(_blueprint(settings, endpoint, executor, bundles, lifecycle, lookup_host))
    app.wsgi_app = endpoint.fast_path(app.wsgi_app)


def _json_answer(status: int, body: bytes, *headers: tuple[str, str]) -> Answer:
    return status, [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                    ("Cache-Control", NO_STORE), *headers], body


def _error_answer(status: int, error: str, message: str) -> Answer:
    return _json_answer(status, error_document(error, message))


def _framework_error(e: HTTPException) -> Answer:
    """What service.errors.http_error gives for ``e``, without Flask."""
    return _error_answer(e.code, error_code(e), e.description)


BUSY = _json_answer(503, error_document("runner_busy", "every worker is busy; retry shortly"), ("Retry-After", "1"))
UNAUTHORIZED = _error_answer(401, "unauthorized", "missing or wrong runner service token")
TOO_LARGE = _framework_error(RequestEntityTooLarge())
INTERNAL_ERROR = _framework_error(InternalServerError())


class ExecuteEndpoint:
    """POST /v1/execute: auth, 413, the contract's 415/400/422, the executor, 503 when busy; never cached."""

    def __init__(self, settings: RunnerSettings, executor: Executor, lifecycle: Lifecycle):
        self.token = settings.inbound_token
        self.max_bytes = settings.max_request_bytes
        self.executor = executor
        self.lifecycle = lifecycle

    def answer(self, environ: dict) -> Answer:
        self.lifecycle.start()  # flask run and test clients; a no-op once started
        if self.token and not _authorized(self.token, environ):
            return UNAUTHORIZED
        body = _read_body(environ, self.max_bytes)
        if body is None:
            return TOO_LARGE
        try:
            req = parse_execute(environ.get("CONTENT_TYPE"), body)
        except RequestRejected as e:
            return _json_answer(e.status, orjson.dumps(e.body()))
        try:
            return _json_answer(200, orjson.dumps(self.executor.execute(EnvironHeaders(environ), req)))
        except RunnerBusy:
            return BUSY

    def fast_path(self, wrapped):
        """WSGI middleware: POST /v1/execute answered here; everything else goes to ``wrapped``."""

        def app(environ, start_response):
            if environ["REQUEST_METHOD"] == "POST" and environ.get("PATH_INFO") == EXECUTE_PATH:
                try:
                    status, headers, body = self.answer(environ)
                except Exception:  # what Flask would do: log it, answer a JSON 500
                    log.exception("Exception on POST /v1/execute")
                    status, headers, body = INTERNAL_ERROR
                start_response(STATUS_LINES[status], list(headers))  # the server may not mutate ours
                return [body]
            return wrapped(environ, start_response)

        return app


class EnvironHeaders(Mapping):
    """Request headers read from the WSGI environ by name, case-insensitively."""

    __slots__ = ("environ",)

    def __init__(self, environ: dict):
        self.environ = environ

    def __getitem__(self, name: str) -> str:
        key = name.upper().replace("-", "_")
        return self.environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key]

    def __iter__(self) -> Iterator[str]:
        for key in self.environ:
            if key.startswith("HTTP_"):
                yield key[5:].replace("_", "-").lower()
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                yield key.replace("_", "-").lower()

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _read_body(environ: dict, limit: int) -> bytes | None:
    """The request body, or None when it is larger than ``limit`` (as werkzeug's max_content_length)."""
    stream = environ["wsgi.input"]
    try:
        length = max(0, int(environ.get("CONTENT_LENGTH") or ""))
    except ValueError:
        length = None
    if length is not None:
        return None if length > limit else stream.read(length)
    if not environ.get("wsgi.input_terminated"):  # no length and an unframed stream: no body
        return b""
    data = stream.read(limit + 1)  # chunked: the server ends the stream
    return None if len(data) > limit else data


def _blueprint(settings: RunnerSettings, endpoint: ExecuteEndpoint, executor: Executor, bundles: BundleCache,
               lifecycle: Lifecycle, lookup_host: HostLookup | None) -> Blueprint:
    bp = Blueprint("runner", __name__)
    probe = _StoreProbe(bundles)

    @bp.after_request
    def _no_store(response):
        response.headers["Cache-Control"] = NO_STORE
        return response

    @bp.post(EXECUTE_PATH)
    def execute():
        """Reached only when the app runs without ``ExecuteEndpoint.fast_path`` in front of Flask."""
        status, headers, body = endpoint.answer(request.environ)
        return Response(body, status, headers)

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


def _authorized(token: str, environ: dict) -> bool:
    given = environ.get("HTTP_X_RUNNER_SERVICE_TOKEN", "")
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if not given and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    return hmac.compare_digest(given.encode(), token.encode())


class _Bare(Response):
    default_mimetype = None  # no Content-Type unless one is given


def _empty(status: int, *headers: tuple[str, str]) -> Response:
    return _Bare(b"", status, [*headers, ("Cache-Control", NO_STORE)])


def _text(status: int, text: str) -> Response:
    return Response(text, status, [("Cache-Control", NO_STORE)], content_type="text/plain; charset=utf-8")
