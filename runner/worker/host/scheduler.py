"""alga:extension/scheduler: the extension's own schedules (reference §4.8).

The internal API's ``scheduler`` area: the Alga server when attached,
storage/registry/schedules.py (the same operations, JSON and statuses) when standalone.

Reads (list, get, get-endpoints) answer ``err(scheduler-error)``; writes answer
a result record with ``success=false`` and a text. Texts for a failed request
are the stable names ``Denied``, ``NotFound``, ``ValidationFailed``,
``QuotaExceeded``, ``Internal`` (the reference prints its Rust enum). One
deliberate improvement: when a write is refused with 400 and a result body
(``{"success": false, "error", "fieldErrors"}``, which is how the server reports
a bad cron, timezone, endpoint or payload), that body is returned instead of a
bare ``ValidationFailed``. ``fieldErrors: null`` becomes none (the reference:
the string ``"null"``).
"""
from __future__ import annotations

import json
from typing import Any

from runner.worker.host.call import CallContext
from runner.worker.host.values import get, record
from runner.worker.wasm_compat import Err
from storage.api import ApiError, pick

CAP = "cap:scheduler.manage"
DENIED = f"Permission denied: {CAP} not granted"
INSTALL_MISSING = "Install ID missing"
BAD_PAYLOAD = "Payload must be valid JSON object or array"
_STATUS = {400: "validation-failed", 401: "denied", 403: "denied", 404: "not-found", 429: "quota-exceeded"}
_TEXT = {"not-found": "NotFound", "validation-failed": "ValidationFailed", "quota-exceeded": "QuotaExceeded",
         "denied": "Denied", "internal": "Internal"}


class SchedulerError(Exception):
    def __init__(self, code: str, body: Any = None):
        super().__init__(code)
        self.code = code
        self.body = body


def _request(ctx: CallContext, operation: str, payload: dict[str, Any]) -> Any:
    try:
        return ctx.api("scheduler", operation, payload)
    except ApiError as e:
        code = _STATUS.get(e.status, "internal") if e.kind == "status" else "internal"
        raise SchedulerError(code, e.body) from None


# -- reads ---------------------------------------------------------------------------------

def _read(ctx: CallContext, operation: str, payload: dict[str, Any]) -> Any:
    """The reply object, or an Err to return as it is."""
    if not ctx.allows(CAP) or ctx.ids.install is None:
        return Err("denied")
    try:
        reply = _request(ctx, operation, payload)
    except SchedulerError as e:
        return Err(e.code)
    return reply if isinstance(reply, dict) else {}


def list_schedules(ctx: CallContext):
    reply = _read(ctx, "list", {})
    if isinstance(reply, Err):
        return reply
    items = reply.get("schedules")
    return [info for info in map(parse_schedule_info, items if isinstance(items, list) else []) if info]


def get_schedule(ctx: CallContext, schedule_id: str):
    reply = _read(ctx, "get", {"scheduleId": schedule_id})
    if isinstance(reply, Err):
        return reply
    return parse_schedule_info(reply.get("schedule"))  # None: ok(none)


def get_endpoints(ctx: CallContext):
    reply = _read(ctx, "getEndpoints", {})
    if isinstance(reply, Err):
        return reply
    items = reply.get("endpoints")
    return [e for e in map(parse_endpoint_info, items if isinstance(items, list) else []) if e]


def parse_schedule_info(value: Any):
    """Server JSON (camelCase or snake_case) -> schedule-info, or None when malformed."""
    if not isinstance(value, dict):
        return None
    required = {"id": value.get("id"), "endpoint_path": pick(value, "endpointPath", "endpoint_path"),
                "endpoint_method": pick(value, "endpointMethod", "endpoint_method"), "cron": value.get("cron"),
                "timezone": value.get("timezone")}
    if not all(isinstance(v, str) for v in required.values()) or not isinstance(value.get("enabled"), bool):
        return None
    payload = value.get("payload")
    if payload is not None and not isinstance(payload, str):
        payload = _compact(payload)
    return record(**required, enabled=value["enabled"], payload=payload, name=_str(value.get("name")),
                  last_run_at=_str(pick(value, "lastRunAt", "last_run_at")),
                  last_run_status=_str(pick(value, "lastRunStatus", "last_run_status")),
                  last_error=_str(pick(value, "lastError", "last_error")),
                  created_at=_str(pick(value, "createdAt", "created_at")))


def parse_endpoint_info(value: Any):
    if not isinstance(value, dict):
        return None
    fields = {k: value.get(k) for k in ("id", "method", "path", "handler")}
    if not all(isinstance(v, str) for v in fields.values()) or not isinstance(value.get("schedulable"), bool):
        return None
    return record(**fields, schedulable=value["schedulable"])


# -- writes --------------------------------------------------------------------------------

def _write_refusal(ctx: CallContext) -> str | None:
    if not ctx.allows(CAP):
        return DENIED
    if ctx.ids.install is None:
        return INSTALL_MISSING
    return None


def _write(ctx: CallContext, operation: str, payload: dict[str, Any]) -> dict:
    """The result object for a write: the reply, or a failure built from the error."""
    try:
        reply = _request(ctx, operation, payload)
    except SchedulerError as e:
        if isinstance(e.body, dict) and "success" in e.body:
            return e.body
        return {"success": False, "error": _TEXT[e.code]}
    return reply if isinstance(reply, dict) else {}


def _fill(payload: dict[str, Any], schedule, names: tuple[str, ...]) -> str | None:
    """Copy the present optional fields; returns an error text for an unusable payload."""
    for name in names:
        value = get(schedule, name)
        if value is not None:
            payload[name] = value
    text = get(schedule, "payload")
    if text is not None:
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if not isinstance(parsed, (dict, list)):
            return BAD_PAYLOAD
        payload["payload"] = parsed
    return None


def _payload_failure() -> dict:
    return {"success": False, "error": BAD_PAYLOAD, "fieldErrors": {"payload": BAD_PAYLOAD}}


def create_schedule(ctx: CallContext, schedule):
    refusal = _write_refusal(ctx)
    if refusal:
        result: dict = {"success": False, "error": refusal}
    else:
        payload = {"endpoint": get(schedule, "endpoint"), "cron": get(schedule, "cron")}
        if _fill(payload, schedule, ("timezone", "enabled", "name")):
            result = _payload_failure()
        else:
            result = _write(ctx, "create", payload)
    return record(success=result.get("success") is True, schedule_id=_str(pick(result, "scheduleId", "schedule_id")),
                  error=_str(result.get("error")), field_errors=_field_errors(result))


def update_schedule(ctx: CallContext, schedule_id: str, schedule):
    refusal = _write_refusal(ctx)
    if refusal:
        result: dict = {"success": False, "error": refusal}
    else:
        payload: dict[str, Any] = {"scheduleId": schedule_id}
        if _fill(payload, schedule, ("endpoint", "cron", "timezone", "enabled", "name")):
            result = _payload_failure()
        else:
            result = _write(ctx, "update", payload)
    return record(success=result.get("success") is True, error=_str(result.get("error")),
                  field_errors=_field_errors(result))


def delete_schedule(ctx: CallContext, schedule_id: str):
    refusal = _write_refusal(ctx)
    result = {"success": False, "error": refusal} if refusal else _write(ctx, "delete", {"scheduleId": schedule_id})
    return record(success=result.get("success") is True, error=_str(result.get("error")))


def _field_errors(result: dict) -> str | None:
    value = pick(result, "fieldErrors", "field_errors")
    if value is None or isinstance(value, str):
        return value
    return _compact(value)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


INTERFACES = {"alga:extension/scheduler": {
    "list-schedules": list_schedules, "get-schedule": get_schedule, "create-schedule": create_schedule,
    "update-schedule": update_schedule, "delete-schedule": delete_schedule, "get-endpoints": get_endpoints,
}}
