"""alga:extension/clients and services (frame): not configured without an Alga server."""
from __future__ import annotations

from runner.host.call import CallContext
from runner.wasm_compat import Err


def _answer(ctx: CallContext, capability: str):
    if not ctx.allows(capability) or not ctx.install_id:
        return Err("not-allowed")
    return Err("internal")


INTERFACES = {
    "alga:extension/clients": {
        "list-clients": lambda ctx, query: _answer(ctx, "cap:client.read"),
        "get-client": lambda ctx, client_id: _answer(ctx, "cap:client.read"),
    },
    "alga:extension/services": {
        "list-services": lambda ctx, query: _answer(ctx, "cap:service.read"),
        "get-service": lambda ctx, service_id: _answer(ctx, "cap:service.read"),
    },
}
