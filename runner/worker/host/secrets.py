"""alga:extension/secrets over the envelope opened before the call (runner/secrets_envelope.py)."""
from __future__ import annotations

from runner.worker.host.call import CallContext
from runner.worker.wasm_compat import Err


def get(ctx: CallContext, key: str):
    if not ctx.allows("cap:secrets.get"):
        return Err("denied")
    if ctx.secrets is None or key not in ctx.secrets:
        return Err("missing")
    return ctx.secrets[key]


def list_keys(ctx: CallContext) -> list[str]:
    if not ctx.allows("cap:secrets.get") or ctx.secrets is None:
        return []
    return sorted(ctx.secrets)


INTERFACES = {"alga:extension/secrets": {"get": get, "list-keys": list_keys}}
