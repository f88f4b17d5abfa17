"""GET/HEAD /ext-ui/<ext>/<hash>/<path> (reference §3): the WSGI fast path and the Flask route.

:func:`init_app` puts :meth:`StaticUi.fast_path` in front of Flask (requests are answered
before routing, as WhiteNoise does) and registers the same answers as a Flask route for
apps that run without the middleware.
"""
from __future__ import annotations

from flask import Blueprint, Flask, request
from werkzeug.routing import PathConverter
from werkzeug.wrappers import Response
from werkzeug.wsgi import wrap_file

from static_cache.server import StaticUi, Window


class _Raw(Response):
    default_mimetype = None  # no Content-Type unless we set one


class _Tail(PathConverter):
    """Like ``path`` but may start with "/", so the sanitizer (400), not the router (404), refuses it."""

    regex = ".+?"
    part_isolating = False


def init_app(app: Flask, static_ui: StaticUi) -> None:
    app.url_map.converters["ui_tail"] = _Tail
    app.register_blueprint(_blueprint(static_ui))
    app.wsgi_app = static_ui.fast_path(app.wsgi_app)


def _blueprint(static_ui: StaticUi) -> Blueprint:
    bp = Blueprint("static_cache", __name__)

    @bp.route("/ext-ui/<extension_id>/<content_hash>/<ui_tail:tail>", methods=["GET", "HEAD"], merge_slashes=False)
    @bp.route("/runner/ext-ui/<extension_id>/<content_hash>/<ui_tail:tail>", methods=["GET", "HEAD"],
              merge_slashes=False)
    def ext_ui(extension_id: str, content_hash: str, tail: str):
        """Reached only when the app runs without ``StaticUi.fast_path`` in front of Flask."""
        status, headers, body = static_ui.serve(request.environ, extension_id, content_hash, tail)
        if body is not None and not isinstance(body, (bytes, Window)):
            body = wrap_file(request.environ, body)
        return _Raw(body, status, headers, direct_passthrough=True)

    return bp
