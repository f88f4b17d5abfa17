"""alga:extension/storage (frame): the reference's answers when no store is configured."""
from __future__ import annotations

from runner.host.call import CallContext
from runner.wasm_compat import Err


def _unavailable(ctx: CallContext):
    if not ctx.allows("cap:storage.kv") or not ctx.install_id:
        return Err("denied")
    return Err("internal")


def get(ctx: CallContext, namespace: str, key: str):
    return _unavailable(ctx)


def put(ctx: CallContext, entry):
    return _unavailable(ctx)


def delete(ctx: CallContext, namespace: str, key: str):
    return _unavailable(ctx)


def list_entries(ctx: CallContext, namespace: str, cursor):
    return _unavailable(ctx)


INTERFACES = {"alga:extension/storage": {"get": get, "put": put, "delete": delete, "list-entries": list_entries}}
