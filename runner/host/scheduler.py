"""alga:extension/scheduler (frame): the reference's answers when no Alga server is configured."""
from __future__ import annotations

from runner.host.call import CallContext
from runner.host.values import record
from runner.wasm_compat import Err

CAP = "cap:scheduler.manage"
DENIED = f"Permission denied: {CAP} not granted"


def _read(ctx: CallContext):
    return Err("denied") if not ctx.allows(CAP) else Err("internal")


def _write_error(ctx: CallContext) -> str:
    if not ctx.allows(CAP):
        return DENIED
    if ctx.install_id is None:
        return "Install ID missing"
    return "Internal"


def list_schedules(ctx: CallContext):
    return _read(ctx)


def get_schedule(ctx: CallContext, schedule_id: str):
    return _read(ctx)


def get_endpoints(ctx: CallContext):
    return _read(ctx)


def create_schedule(ctx: CallContext, schedule):
    return record(success=False, schedule_id=None, error=_write_error(ctx), field_errors=None)


def update_schedule(ctx: CallContext, schedule_id: str, schedule):
    return record(success=False, error=_write_error(ctx), field_errors=None)


def delete_schedule(ctx: CallContext, schedule_id: str):
    return record(success=False, error=_write_error(ctx))


INTERFACES = {"alga:extension/scheduler": {
    "list-schedules": list_schedules, "get-schedule": get_schedule, "create-schedule": create_schedule,
    "update-schedule": update_schedule, "delete-schedule": delete_schedule, "get-endpoints": get_endpoints,
}}
