"""alga:extension/ui-proxy (frame): route-not-found while no proxy base is configured."""
from __future__ import annotations

from runner.host.call import CallContext
from runner.wasm_compat import Err


def call_route(ctx: CallContext, route: str, payload):
    if not ctx.allows("cap:ui.proxy"):
        return Err("denied")
    return Err("route-not-found")


INTERFACES = {"alga:extension/ui-proxy": {"call-route": call_route}}
