"""The OpenAPI 3.1 description of every HTTP route, served at ``GET /openapi.json``.

Written by hand next to the composition root (it describes every package's routes); the served
document keeps the paths the app registered (an app attached to an Alga server has no gateway,
publish API or host page). tests/test_openapi.py validates it with openapi-spec-validator and
compares it with ``app.url_map`` both ways, so a route can not be added or dropped without it.
"""
from __future__ import annotations

import re
from typing import Any

from flask import Flask, jsonify

VERSION = "0.1.0"
TEXT = {"text/plain": {"schema": {"type": "string"}}}
GATEWAY_METHODS = ("get", "post", "put", "patch", "delete")


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: str | dict) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": _ref(schema) if isinstance(schema, str) else schema}}}


def _error(description: str) -> dict:
    return _json(description, "Error")


def _param(name: str, where: str, description: str, required: bool = True, **schema) -> dict:
    return {"name": name, "in": where, "required": required, "description": description,
            "schema": {"type": "string", **schema}}


def _string_map(description: str) -> dict:
    return {"type": "object", "additionalProperties": {"type": "string"}, "description": description}


def _schemas_runner() -> dict[str, Any]:
    nullable = lambda kind, text: {"type": [kind, "null"], "description": text}  # noqa: E731
    return {
        "Error": {"type": "object", "required": ["error", "message"], "description":
                  "The one error shape of every JSON route; some add fields (`field`, `code`, `details`).",
                  "properties": {"error": {"type": "string", "description": "A snake_case code."},
                                 "message": {"type": "string"}, "field": {"type": "string"}},
                  "additionalProperties": True},
        "ExecuteRequest": {
            "type": "object", "required": ["context", "http"], "additionalProperties": True,
            "description": "What Alga's gateway and scheduled jobs send (reference §1.1); unknown fields are ignored.",
            "properties": {
                "context": {"type": "object", "required": ["tenant_id", "extension_id", "content_hash"],
                            "properties": {"tenant_id": {"type": "string"}, "extension_id": {"type": "string"},
                                           "content_hash": {"type": "string", "pattern":
                                                            "^(sha256:)?[0-9a-fA-F]{64}$"},
                                           "request_id": nullable("string", "Echoed into logs and events."),
                                           "install_id": nullable("string", ""), "version_id": nullable("string", ""),
                                           "config": _string_map("Install config.")}},
                "http": {"type": "object", "required": ["method", "path"],
                         "properties": {"method": {"type": "string"}, "path": {"type": "string"},
                                        "query": _string_map("Query parameters."),
                                        "headers": _string_map("Request headers."),
                                        "body_b64": nullable("string", "The body, base64.")}},
                "limits": {"type": ["object", "null"], "properties": {
                    k: {"type": ["integer", "null"], "minimum": 0} for k in ("timeout_ms", "memory_mb", "fuel")}},
                "secret_envelope": {"type": ["object", "null"], "required": ["ciphertext_b64"],
                                    "properties": {k: {"type": ["string", "null"]} for k in (
                                        "ciphertext_b64", "version", "algorithm", "expires_at", "key_path", "mount")}},
                "providers": {"type": ["array", "null"], "items": {"type": "string"},
                              "description": "Capabilities granted (cap:storage.kv, ...)."},
                "user": {"type": ["object", "null"], "required": ["user_id", "user_email", "user_name", "user_type"],
                         "additionalProperties": True},
            }},
        "ExecuteResponse": {
            "type": "object", "required": ["status", "headers", "body_b64", "error"],
            "description": "The guest's answer, or `error` (`bundle_fetch_failed: ...`, `execute_failed: ...`).",
            "properties": {"status": {"type": "integer"}, "headers": _string_map("Response headers."),
                           "body_b64": {"type": ["string", "null"]}, "error": {"type": ["string", "null"]}}},
        "Healthz": {"type": "object", "required": ["cache_writable", "bundle_store", "ext_cache_max_bytes"],
                    "properties": {"cache_writable": {"type": "boolean"},
                                   "bundle_store": {"enum": ["ok", "bundle_store_unreachable"]},
                                   "ext_cache_max_bytes": {"type": ["string", "null"]}}},
        "Readyz": {"type": "object", "required": ["ready", "draining", "cache_writable", "bundle_store", "workers"],
                   "properties": {"ready": {"type": "boolean"}, "draining": {"type": "boolean"},
                                  "cache_writable": {"type": "boolean"}, "bundle_store": {"type": "string"},
                                  "workers": {"type": "integer", "description": "Worker processes alive."}}},
        "DebugEvent": {"type": "object", "required": ["ts", "level", "stream", "message"],
                       "additionalProperties": True,
                       "properties": {"ts": {"type": "integer", "description": "Milliseconds since the epoch."},
                                      "level": {"type": "string"}, "stream": {"type": "string"},
                                      "message": {"type": "string"}, "truncated": {"type": "boolean"},
                                      **{k: {"type": "string"} for k in ("tenant", "extension", "install",
                                                                           "request", "version")}}},
    }


def _schemas_publish() -> dict[str, Any]:
    text = {"type": "string", "minLength": 1}
    hex_hash = {"type": "string", "pattern": "^[a-f0-9]{64}$"}
    return {
        "AlgaError": {"allOf": [_ref("Error"), {"type": "object", "required": ["code"], "properties": {
            "code": {"type": "string", "description": "Alga's code (INVALID_MANIFEST, HASH_MISMATCH, ...)."},
            "details": {"description": "INVALID_MANIFEST: {issues: [{path, message}]}; HASH_MISMATCH: "
                                       "{declared, computed}; VALIDATION_ERROR: [{path, message}]."}}}]},
        "UploadAnswer": {"type": "object", "required": ["upload", "filename", "size"], "properties": {
            "upload": {"type": "object", "required": ["key", "strategy"], "properties": {
                "key": {"type": "string", "pattern": "^sha256/_staging/[0-9a-f-]{36}/bundle\\.tar\\.zst$"},
                "strategy": {"const": "staging"}}},
            "filename": {"type": "string"}, "size": {"type": "integer"}, "declaredHash": hex_hash}},
        "FinalizeRequest": {"type": "object", "required": ["key"], "properties": {
            "key": {"type": "string", "description": "`upload.key` of the upload-proxy answer."},
            "declaredHash": hex_hash, "size": {"type": "integer", "minimum": 1},
            "manifestJson": {"type": "string", "description": "manifest.json as text; absent: the archive's."}}},
        "FinalizeAnswer": {"type": "object", "required": ["extension", "version", "contentHash", "canonicalKey"],
                           "properties": {
                               "extension": {"type": "object", "required": ["id", "name"], "properties": {
                                   "id": {"type": "string", "description": "The registry id."},
                                   "name": {"type": "string"}, "publisher": {"type": "string"}}},
                               "version": {"type": "object", "required": ["id", "version"], "properties": {
                                   "id": {"type": "string"}, "version": {"type": "string"}}},
                               "contentHash": hex_hash, "canonicalKey": {"type": "string"}}},
        "InstallRequest": {"type": "object", "required": ["registryId", "version"], "properties": {
            "registryId": text, "version": {**text, "description": "A published version, or X.Y.* for the newest "
                                                                   "X.Y.N."}}},
        "InstallAnswer": {"type": "object", "required": ["data"], "properties": {"data": {
            "type": "object", "required": ["registryId", "version", "installId", "success", "message"],
            "properties": {"registryId": {"type": "string"}, "version": {"type": "string"},
                           "installId": {"type": "string"}, "success": {"const": True},
                           "message": {"type": "string"},
                           "warnings": {"type": "array", "items": {"type": "string"}}}}}},
        "UninstallRequest": {"type": "object", "required": ["registryId"], "properties": {"registryId": text}},
        "UninstallAnswer": {"type": "object", "required": ["data"], "properties": {"data": {
            "type": "object", "required": ["registryId", "success", "message"],
            "properties": {"registryId": {"type": "string"}, "success": {"const": True},
                           "message": {"type": "string"}}}}},
    }


def _runner_paths() -> dict[str, Any]:
    probe = lambda summary, schema: {"summary": summary, "tags": ["probes"],  # noqa: E731
                                     "responses": {"200": _json("Healthy.", schema)}}
    return {
        "/v1/execute": {"post": {
            "operationId": "execute", "tags": ["runner"], "summary": "Run a component (reference §1.1)",
            "security": [{}, {"runnerToken": []}, {"bearer": []}],
            "parameters": [_param("x-alga-tenant", "header", "Routing: the tenant."),
                           _param("x-alga-extension", "header", "Routing: the extension (registry id)."),
                           _param("x-idempotency-key", "header", "Replays the stored answer.", required=False)],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("ExecuteRequest")}}},
            "responses": {"200": _json("The envelope; `status` is the guest's (or the failure's).", "ExecuteResponse"),
                          "400": _error("Malformed JSON."), "401": _error("EXT_INBOUND_TOKEN set and not given."),
                          "413": _error("Over EXT_MAX_REQUEST_BYTES."), "415": _error("Not application/json."),
                          "422": _error("Does not fit the schema; `field` names the place."),
                          "503": _error("Every worker busy (`runner_busy`, Retry-After).")}}},
        "/warmup": {"post": {"operationId": "warmup", "tags": ["runner"], "summary": "Always 400, as the reference",
                             "responses": {s: {"description": d, "content": TEXT} for s, d in (
                                 ("400", "Unsupported."), ("415", "Not JSON."), ("422", "No content_hash."))}}},
        "/": {"get": {"operationId": "hostDispatch", "tags": ["runner"],
                      "summary": "Per-install host: 307 to its UI (found through Alga's lookup-by-host)",
                      "responses": {"307": {"description": "To /ext-ui/...", "headers": {
                          "Location": {"schema": {"type": "string"}}}},
                          **{s: {"description": d} for s, d in (
                              ("400", "No Host."), ("404", "No install."), ("502", "Lookup failed."),
                              ("503", "No Alga server."))}}}},
        "/healthz": {"get": {**probe("Reference health: 200 while the cache is writable", "Healthz"),
                             "operationId": "healthz", "responses": {"200": _json("Healthy.", "Healthz"),
                                                                     "503": _json("Cache not writable.", "Healthz")}}},
        "/livez": {"get": {**probe("Liveness", {"type": "object", "properties": {"status": {"const": "ok"}}}),
                           "operationId": "livez"}},
        "/readyz": {"get": {**probe("Readiness: not draining, cache, store, workers", "Readyz"),
                            "operationId": "readyz", "responses": {"200": _json("Ready.", "Readyz"),
                                                                   "503": _json("Not ready.", "Readyz")}}},
        "/metrics": {"get": {"operationId": "metrics", "tags": ["probes"], "summary": "Prometheus metrics",
                             "responses": {"200": {"description": "Text exposition format.", "content": TEXT}}}},
        "/openapi.json": {"get": {"operationId": "openapi", "tags": ["probes"], "summary": "This document",
                                  "responses": {"200": _json("OpenAPI 3.1.", {"type": "object"})}}},
    }


def _ext_ui_paths() -> dict[str, Any]:
    params = [_param("extension_id", "path", "Registry id."),
              _param("content_hash", "path", "`sha256:<hex>` (URL-encoded) or hex."),
              _param("tail", "path", "File path inside the UI; may contain '/'. Extension-less paths fall back to "
                                     "index.html."),
              _param("tenant", "query", "Tenant (strict validation).", required=False)]
    responses = {"200": {"description": "The file (immutable, ETag, gzip/br variants)."},
                 "206": {"description": "A range."}, "304": {"description": "Not modified."},
                 "400": {"description": "Invalid hash or path (text/plain)."},
                 "404": {"description": "Not found, or refused by strict validation."},
                 "413": {"description": "Over EXT_STATIC_MAX_FILE_BYTES."}, "416": {"description": "Bad range."},
                 "500": {"description": "`{\"code\": \"extract_failed\"}`."},
                 "502": {"description": "`{\"code\": \"archive_hash_mismatch\"}`."}}
    out = {}
    for prefix, name in (("", "extUi"), ("/runner", "extUiBehindRunnerPrefix")):
        out[f"{prefix}/ext-ui/{{extension_id}}/{{content_hash}}/{{tail}}"] = {
            method: {"operationId": f"{name}{method.capitalize()}", "tags": ["ui"],
                     "summary": "A bundle's iframe UI, content-addressed (reference §3)", "parameters": params,
                     "responses": responses} for method in ("get", "head")}
    return out


def _gateway_paths() -> dict[str, Any]:
    out = {}
    for prefix, name, what in (("/api/ext", "gateway", "Alga's gateway"),
                               ("/api/ext-proxy", "extProxy", "the iframe's apiproxy route")):
        for suffix, params in (("/", []), ("/{path}", [_param("path", "path", "The handler path; may contain '/'.")])):
            out[f"{prefix}/{{extension_id}}{suffix}"] = {method: {
                "operationId": f"{name}{method.capitalize()}{'Root' if suffix == '/' else ''}", "tags": ["standalone"],
                "summary": f"Call an extension's handler as {what} does (standalone mode)",
                "parameters": [_param("extension_id", "path", "Registry id, name or publisher.name."),
                               _param("x-alga-tenant", "header", "Tenant (default EXT_DEFAULT_TENANT).",
                                      required=False),
                               *params],
                "requestBody": {"required": False, "content": {"*/*": {"schema": {}}}},
                "responses": {"200": {"description": "The guest's status, allow-listed headers and body (any status)."},
                              "403": _error("Disabled install, or a cross-site browser request."),
                              "404": _error("Not installed, or not in the manifest's api.endpoints."),
                              "413": _error("Body over 10 MiB."), "502": _error("The runner failed (`code`)."),
                              "503": _error("Every worker busy.")}} for method in GATEWAY_METHODS}
    return out


def _publish_paths() -> dict[str, Any]:
    def op(name: str, summary: str, body: dict | None, answer: dict, **extra) -> dict:
        refusals = {"400": _json("Refused input (`code` says which).", "AlgaError"),
                    "401": _json("x-api-key missing or wrong.", "AlgaError"),
                    "403": _json("EXT_PUBLISH_API_KEY is not set.", "AlgaError"),
                    "404": _json("Unknown tenant, extension or version.", "AlgaError")}
        return {"post": {"operationId": name, "tags": ["publish"], "summary": summary,
                         "security": [{"publishApiKey": []}],
                         "parameters": [_param("x-tenant-id", "header", "Tenant (default EXT_DEFAULT_TENANT).",
                                               required=False), *extra.pop("parameters", [])],
                         **({"requestBody": body} if body else {}),
                         "responses": {**answer, **refusals, **extra.pop("responses", {})}}}

    def body(schema: str, media: str = "application/json") -> dict:
        return {"required": True, "content": {media: {"schema": _ref(schema) if schema else
                                                      {"type": "string", "format": "binary"}}}}

    return {
        "/api/ext-bundles/upload-proxy": op(
            "uploadBundle", "Alga CLI: stage an archive (streamed, hashed, at most 200 MiB)",
            body("", "application/octet-stream"), {"200": _json("Staged.", "UploadAnswer")},
            parameters=[_param("filename", "query", "bundle.tar.zst"),
                        _param("size", "query", "Bytes.", pattern="^[0-9]+$"),
                        _param("declaredHash", "query", "SHA-256 hex.", required=False, pattern="^[a-f0-9]{64}$")]),
        "/api/ext-bundles/finalize": op(
            "finalizeBundle", "Alga CLI: check the staged archive and register a new version", body("FinalizeRequest"),
            {"200": _json("Registered.", "FinalizeAnswer")},
            responses={"409": _json("That version exists (EXTENSION_VERSION_ALREADY_EXISTS).", "AlgaError"),
                       "502": _json("The bundle store failed.", "AlgaError")}),
        "/api/v1/extensions/install": op(
            "installExtension", "Alga CLI: install a published version for the tenant", body("InstallRequest"),
            {"202": _json("Installed (and compiled).", "InstallAnswer")},
            responses={"409": _json("The install failed.", "AlgaError")}),
        "/api/v1/extensions/uninstall": op(
            "uninstallExtension", "Alga CLI: remove the tenant's install (also when there is none)",
            body("UninstallRequest"), {"200": _json("Uninstalled.", "UninstallAnswer")},
            responses={"409": _json("The reference names several installs.", "AlgaError")}),
    }


def _host_page_paths() -> dict[str, Any]:
    html = {"description": "An HTML page.", "content": {"text/html": {"schema": {"type": "string"}}}}
    tenant = _param("tenant", "query", "Tenant (default EXT_DEFAULT_TENANT).", required=False)
    registry = _param("registry_id", "path", "Registry id.")
    page = lambda name, summary, params: {"get": {"operationId": name, "tags": ["host page"],  # noqa: E731
                                                  "summary": summary, "parameters": params,
                                                  "responses": {"200": html, "404": html}}}
    return {
        "/msp/extensions": page("hostPage", "The standalone host page: sidebar of UI extensions", [tenant]),
        "/msp/extensions/{registry_id}/": page(
            "hostPageExtension", "One extension's UI in the page's iframe",
            [registry, tenant, _param("path", "query", "Host path.", required=False)]),
        "/msp/extensions/{registry_id}/events": {"get": {
            "operationId": "debugEvents", "tags": ["host page"],
            "summary": "Server-Sent Events: an install's recent debug events, then new ones",
            "parameters": [registry, tenant, _param("follow", "query", "false: only the recent events.",
                                                    required=False, enum=["true", "false"]),
                           _param("Last-Event-ID", "header", "Skip events up to this ts.", required=False)],
            "responses": {"200": {"description": "`id: <ts>` / `data: <DebugEvent JSON>` events.",
                                  "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                          "404": _error("Not installed for the tenant.")}}},
        "/msp/theme.css": {"get": {"operationId": "themeCss", "tags": ["host page"], "summary": "Theme variables",
                                   "responses": {"200": {"description": "CSS.",
                                                         "content": {"text/css": {"schema": {"type": "string"}}}}}}},
        "/msp/static/{filename}": {"get": {"operationId": "hostPageStatic", "tags": ["host page"],
                                           "summary": "The page's scripts and styles",
                                           "parameters": [_param("filename", "path", "A file name.")],
                                           "responses": {"200": {"description": "The file."},
                                                         "404": _error("No such file.")}}},
    }


DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Alga extension runner (Python)", "version": VERSION,
             "description": "Runs Alga PSA extensions (WebAssembly components of `alga:extension/runner`) and serves "
                            "their UIs. Standalone mode adds the gateway, the publish API of Alga's CLI and a host "
                            "page. Errors of JSON routes: `{error, message}`."},
    "servers": [{"url": "http://127.0.0.1:8085", "description": "make run"}],
    "tags": [{"name": n} for n in ("runner", "probes", "ui", "standalone", "publish", "host page")],
    "paths": {**_runner_paths(), **_ext_ui_paths(), **_gateway_paths(), **_publish_paths(), **_host_page_paths()},
    "components": {
        "schemas": {**_schemas_runner(), **_schemas_publish()},
        "securitySchemes": {
            "runnerToken": {"type": "apiKey", "in": "header", "name": "x-runner-service-token",
                            "description": "EXT_INBOUND_TOKEN, when set."},
            "bearer": {"type": "http", "scheme": "bearer", "description": "EXT_INBOUND_TOKEN, when set."},
            "publishApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key",
                              "description": "EXT_PUBLISH_API_KEY (alga --api-key)."}},
    },
}


def openapi_path(rule: str) -> str:
    """``/api/ext/<extension_id>/<path:path>`` -> ``/api/ext/{extension_id}/{path}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def document(app: Flask) -> dict[str, Any]:
    """DOCUMENT with the paths ``app`` registered."""
    registered = {openapi_path(rule.rule) for rule in app.url_map.iter_rules()}
    return {**DOCUMENT, "paths": {p: ops for p, ops in DOCUMENT["paths"].items() if p in registered}}


def init_app(app: Flask) -> None:
    """Register ``GET /openapi.json``; call it after every other route is registered."""
    served: dict[str, Any] = {}

    @app.get("/openapi.json")
    def openapi_json():
        if not served:
            served.update(document(app))
        response = jsonify(served)
        response.headers["Cache-Control"] = "no-cache"
        return response
