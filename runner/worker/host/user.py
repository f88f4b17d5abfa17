"""alga:extension/user and user-v2: the user on whose behalf the call runs."""
from __future__ import annotations

from runner.worker.host.call import CallContext
from runner.worker.host.values import record
from runner.worker.wasm_compat import Err


def _fields(ctx: CallContext) -> dict:
    """Both records' fields. The reference's ``user-data`` has no ``client-id``; it is set anyway
    for guests built against this project's earlier WIT, which had it: wasmtime reads only the
    fields the guest's own record type declares."""
    u = ctx.user or {}
    return dict(tenant_id=ctx.ids.tenant, client_name=u.get("client_name") or "", user_id=u["user_id"],
                user_email=u["user_email"], user_name=u["user_name"], user_type=u["user_type"],
                client_id=u.get("client_id"))


def _check(ctx: CallContext):
    if not ctx.allows("cap:user.read"):
        return Err("not-allowed")
    if ctx.user is None:
        return Err("not-available")
    return None


def get_user(ctx: CallContext):
    return _check(ctx) or record(**_fields(ctx))


def get_user_v2(ctx: CallContext):
    denied = _check(ctx)
    if denied:
        return denied
    extra = ctx.user.get("additional_fields") or {}
    return record(**_fields(ctx), additional_fields=sorted((str(k), str(v)) for k, v in extra.items()))


INTERFACES = {
    "alga:extension/user": {"get-user": get_user},
    "alga:extension/user-v2": {"get-user": get_user_v2},
}
