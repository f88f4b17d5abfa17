"""Blueprint: GET/HEAD /ext-ui/<ext>/<hash>/<path> (reference §3), GET / host dispatch (§1.3), POST /warmup (§1.5).

Register after ``app.extensions["settings"]`` and ``["bundles"]`` are set. A standalone
registry may put ``ui_validate(tenant, extension, content_hash) -> bool`` into
``app.extensions`` before registering.
"""
from __future__ import annotations

import json
from urllib.parse import urlencode

from flask import Blueprint, current_app, request
from werkzeug.routing import PathConverter
from werkzeug.wrappers import Response
from werkzeug.wsgi import wrap_file

from static_cache.headers import NO_STORE
from static_cache.server import StaticUi, Window
from static_cache.tenancy import RegistryError, Tenancy, host_without_port

bp = Blueprint("static_cache", __name__)


class _Raw(Response):
    default_mimetype = None  # no Content-Type unless we set one


class _Tail(PathConverter):
    """Like ``path`` but may start with "/", so the sanitizer (400), not the router (404), refuses it."""

    regex = ".+?"
    part_isolating = False


@bp.record_once
def _setup(state) -> None:
    app = state.app
    app.url_map.converters["ui_tail"] = _Tail
    settings = app.extensions["settings"]
    tenancy = Tenancy(settings, app.extensions.get("ui_validate"))
    app.extensions["static_ui"] = StaticUi(settings, app.extensions["bundles"], tenancy)


@bp.route("/ext-ui/<extension_id>/<content_hash>/<ui_tail:tail>", methods=["GET", "HEAD"], merge_slashes=False)
@bp.route("/runner/ext-ui/<extension_id>/<content_hash>/<ui_tail:tail>", methods=["GET", "HEAD"],
          merge_slashes=False)
def ext_ui(extension_id: str, content_hash: str, tail: str):
    """Reached only when the app runs without ``StaticUi.fast_path`` in front of Flask."""
    status, headers, body = current_app.extensions["static_ui"].serve(request.environ, extension_id, content_hash,
                                                                       tail)
    if body is not None and not isinstance(body, (bytes, Window)):
        body = wrap_file(request.environ, body)
    return _Raw(body, status, headers, direct_passthrough=True)


def _empty(status: int, *headers: tuple[str, str]):
    return _Raw(b"", status, [*headers, ("Cache-Control", NO_STORE)])


def _text(status: int, text: str):
    return _Raw(text, status, [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", NO_STORE)])


@bp.route("/", methods=["GET", "HEAD"])
def host_dispatch():
    """307 to the UI of the install mapped to this Host (per-install domains)."""
    host = host_without_port(request.headers.get("Host", ""))
    if not host:
        return _empty(400)
    tenancy = current_app.extensions["static_ui"].tenancy
    if not tenancy.can_lookup:
        return _empty(503)
    try:
        found = tenancy.lookup_host(host)
    except RegistryError:
        return _empty(502)
    if found is None:
        return _empty(404)
    query = urlencode({"tenant": found["tenant_id"], "extensionId": found["extension_id"]})
    return _empty(307, ("Location", f"/ext-ui/{found['extension_id']}/{found['content_hash']}/index.html?{query}"))


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
