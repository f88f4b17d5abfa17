"""The standalone host page (/msp/extensions), its theme CSS and the debug event stream."""
from __future__ import annotations

import json
import time

from flask import Blueprint, Flask, Response, render_template, request, url_for

from runner.debug.stream import DebugStream
from service.errors import json_error
from service.lifecycle import Lifecycle
from standalone.host_page import bridge
from storage.registry.installs import Registry

KEEPALIVE_S = 15.0  # a comment line this often: proxies keep the stream, dead clients show up
POLL_S = 1.0  # how often an idle stream looks at the draining flag
RECENT_EVENTS = 100
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

# The page embeds a session token and frames same-origin UIs only; nothing may frame it.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")


class HostPage:
    """What the page's views need, given explicitly by :func:`init_app`."""

    def __init__(self, registry: Registry, debug: DebugStream, lifecycle: Lifecycle, default_tenant: str,
                 any_origin: bool, sandbox: str = "same-origin"):
        """:param sandbox: a key of :data:`bridge.SANDBOXES` (EXT_UI_SANDBOX)."""
        self.registry = registry
        self.sandbox = bridge.SANDBOXES[sandbox]
        self.debug = debug
        self.lifecycle = lifecycle
        self.default_tenant = default_tenant
        self.any_origin = any_origin
        self.sessions = bridge.SessionSigner()


def init_app(app: Flask, page: HostPage) -> None:
    app.register_blueprint(_blueprint(page))


def _blueprint(page: HostPage) -> Blueprint:
    bp = Blueprint("host_page", __name__, template_folder="templates", static_folder="static",
                   static_url_path="/msp/static")

    @bp.get("/msp/extensions")
    def index():
        return _page(page, None)

    @bp.get("/msp/extensions/<registry_id>/")
    def extension(registry_id: str):
        return _page(page, registry_id)

    @bp.get("/msp/theme.css")
    def theme():
        response = Response(bridge.theme_css(), mimetype="text/css")
        response.headers["Cache-Control"] = "no-cache"
        return response

    @bp.get("/msp/extensions/<registry_id>/events")
    def events(registry_id: str):
        """Server-Sent Events: the recent debug events of an installed extension (the page's panel, and
        ``flask ext logs`` without Redis), then new ones as they come (``?follow=false``: only the recent)."""
        tenant = _tenant(page)
        if not any(i.registry_id == registry_id for i in page.registry.installs(tenant)):
            return json_error(404, "extension_not_available", f"{registry_id!r} is not installed for tenant {tenant}")
        follow = request.args.get("follow", "true").strip().lower() not in ("false", "0", "no")
        stream = _stream(page.debug, tenant, registry_id, _last_event_id(),
                         (lambda: page.lifecycle.draining) if follow else (lambda: True))
        response = Response(stream, mimetype="text/event-stream")
        response.headers["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
        return _no_store(response)

    return bp


def _stream(debug, tenant: str, extension: str, after: int, stop):
    """Under Gunicorn's gevent worker the waits inside follow() yield to other requests. The stream
    ends once ``stop()`` is true: after the recent events (``?follow=false``), or when the worker drains
    (the browser reconnects elsewhere), so it never holds up a shutdown."""
    with debug.follow(tenant, extension, POLL_S) as follower:
        yield "retry: 3000\n\n"
        for event in debug.recent(tenant, extension, RECENT_EVENTS):
            if event["ts"] > after:
                yield _sse(event)
        if stop():
            return
        last_write = time.monotonic()
        for event in follower:
            if stop():
                return
            if event is not None:
                yield _sse(event)
            elif time.monotonic() - last_write < KEEPALIVE_S:
                continue
            else:
                yield ": keep-alive\n\n"
            last_write = time.monotonic()


def _sse(event: dict) -> str:
    return f"id: {event['ts']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


def _last_event_id() -> int:
    """On reconnect, EventSource sends the id (the ``ts``) of the last event it saw: skip up to it."""
    try:
        return int(request.headers.get("Last-Event-ID", "0"))
    except ValueError:
        return 0


def _tenant(page: HostPage) -> str:
    return (request.args.get("tenant") or "").strip() or page.default_tenant


def _ui_installs(page: HostPage, tenant: str) -> list[dict]:
    """The tenant's enabled installs that declare a UI, as the sidebar lists them."""
    installs = page.registry.installs(tenant, enabled_only=True)
    views = [_view(i) for i in installs if i.ui and i.content_hash]
    return sorted(views, key=lambda v: v["label"].lower())


def _view(install) -> dict:
    # The manifest was validated at install: hooks is an object, and an appMenu has a non-empty label.
    app_menu = (install.ui.get("hooks") or {}).get("appMenu") or {}
    return {"registry_id": install.registry_id, "label": app_menu.get("label") or install.name,
            "name": install.name, "version": install.version, "content_hash": install.content_hash,
            "capabilities": install.capabilities, "endpoints": install.api_endpoints}


def _find(installs: list[dict], registry_id: str) -> dict | None:
    return next((i for i in installs if i["registry_id"] == registry_id), None)


def _page(page: HostPage, registry_id: str | None):
    tenant = _tenant(page)
    installs = _ui_installs(page, tenant)
    selected = _find(installs, registry_id) if registry_id else None
    known = [{"id": t.id, "name": t.name} for t in page.registry.tenants()]
    if tenant not in {t["id"] for t in known}:
        known.insert(0, {"id": tenant, "name": tenant})
    context = {"tenant": tenant, "tenants": known, "extensions": installs, "selected": selected,
               "missing": registry_id if registry_id and selected is None else None, "methods": METHODS,
               "sandbox": page.sandbox}
    if selected is not None:
        path = bridge.client_path(request.args.get("path"))
        context["path"] = path
        context["frame_src"] = bridge.iframe_src(selected["registry_id"], selected["content_hash"], path, tenant)
        context["config"] = {
            "tenant": tenant,
            "extension_id": selected["registry_id"],
            "path": path,
            "session": page.sessions.issue(tenant, selected["registry_id"]),
            "themes": bridge.THEMES,
            "any_origin": page.any_origin,
            "events_url": url_for("host_page.events", registry_id=selected["registry_id"], tenant=tenant),
        }
    response = Response(render_template("host_page/extensions.html", **context),
                        404 if context["missing"] else 200, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return _no_store(response)


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response
