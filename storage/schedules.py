"""Extension schedules in the SQLite registry (standalone mode, table ``ext_schedule``).

:func:`handle` answers one scheduler operation exactly as the Alga server's
``/api/internal/ext-scheduler/install/{id}`` route does, as ``(status, body)``,
so runner/host/scheduler.py parses both modes with the same code. Validation
follows the server's ``schedulerValidation.ts``:

* cron: 5 fields (``m h dom mon dow``) of ``0-9 * / , -`` only, not both
  day-of-month and day-of-week, not more often than every 5 minutes, and it
  must parse (croniter);
* timezone: an IANA name (zoneinfo), default ``UTC``;
* payload: a JSON object or array, at most 100 000 characters;
* name: trimmed, at most 128 characters, unique per install;
* endpoint: ``"METHOD /path"`` or ``"/path"``. When the registry knows the
  install's version and its ``api_endpoints``, it must name one of them with
  method GET or POST and no path parameters (the server's rule). Otherwise any
  such path is accepted; a bare path means ``POST``;
* at most 50 schedules per install.

Not ported: the server's rate limit (10 writes a minute per install).

``next_run_at`` (UTC, ``YYYY-MM-DDTHH:MM:SS.mmmZ`` like every timestamp column)
is set on create and whenever cron, timezone or enabled change; it is NULL for
disabled schedules, so a runner can poll
``WHERE enabled = 1 AND next_run_at <= now`` and then call :func:`next_run_at`
for the following run. No wasmtime import here.
"""
from __future__ import annotations

import json
import re
import sqlite3
import uuid
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from storage.db import open_db

MAX_SCHEDULES_PER_INSTALL = 50
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.I)
_CRON_PART = re.compile(r"^[0-9*/,-]+$")
_SELECTOR = re.compile(r"^([A-Za-z]+)\s+(.+)$")
_ENDPOINT_NAMESPACE = uuid.UUID("6c0f5b0e-2f53-4a8e-9a51-1d0b8a3c9e47")


class InputError(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


# -- validation (schedulerValidation.ts) ---------------------------------------------------

def validate_cron(cron: Any) -> str:
    value = str(cron or "").strip()
    if len(value) > 128:
        raise InputError("cron", "Cron expression too long")
    parts = value.split()
    if len(parts) != 5:
        raise InputError("cron", "Invalid cron expression (expected 5 fields: m h dom mon dow)")
    if not all(_CRON_PART.match(p) for p in parts):
        raise InputError("cron", "Invalid cron expression (unsupported characters)")
    minute, hour, dom, mon, dow = parts
    if dom != "*" and dow != "*":
        raise InputError("cron", "Cron cannot set both day-of-month and day-of-week")
    if hour == dom == mon == dow == "*" and minute in ("*", "*/1", "*/2", "*/3", "*/4"):
        raise InputError("cron", "Cron too frequent (minimum interval is 5 minutes)")
    if not croniter.is_valid(value):
        raise InputError("cron", "Invalid cron expression")
    return value


def validate_timezone(tz: Any) -> str:
    value = str(tz or "UTC").strip()
    if not value:
        return "UTC"
    if len(value) > 64:
        raise InputError("timezone", "Timezone too long")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError("timezone", "Invalid timezone") from None
    return value


def validate_payload(payload: Any) -> str | None:
    """JSON object/array -> its compact JSON text (None stays None)."""
    if payload is None:
        return None
    if not isinstance(payload, (dict, list)):
        raise InputError("payload", "Payload must be a JSON object or array")
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    if len(text) > 100_000:
        raise InputError("payload", "Payload too large")
    return text


def validate_name(name: Any) -> str | None:
    if name is None:
        return None
    value = str(name).strip()
    if not value:
        return None
    if len(value) > 128:
        raise InputError("name", "Name too long")
    return value


def next_run_at(cron: str, tz: str, after: datetime | None = None) -> str:
    """The first run strictly after ``after`` (default now), as a UTC timestamp string."""
    zone = ZoneInfo(tz)
    start = (after or datetime.now(timezone.utc)).astimezone(zone)
    when = croniter(cron, start).get_next(datetime).astimezone(timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


# -- endpoints -----------------------------------------------------------------------------

def _normalize_path(path: Any) -> str:
    raw = str(path or "").strip()
    if not raw:
        return ""
    return re.sub(r"/{2,}", "/", raw if raw.startswith("/") else "/" + raw)


def _has_params(path: str) -> bool:
    return ":" in path or "{" in path or "}" in path


def registry_endpoints(conn, tenant: str, install: str) -> tuple[str | None, list[dict]]:
    """(version id, endpoints of that version) for the install, or (None, []) when unknown."""
    try:
        row = conn.execute(
            "SELECT v.id, v.api_endpoints FROM tenant_extension_install i "
            "JOIN extension_version v ON v.id = i.version_id WHERE i.id = ? AND i.tenant_id = ?",
            (install, tenant)).fetchone()
    except sqlite3.OperationalError:  # registry tables missing: nothing known
        return None, []
    if row is None:
        return None, []
    try:
        declared = json.loads(row[1] or "[]")
    except ValueError:
        declared = []
    seen: dict[str, dict] = {}
    for e in declared if isinstance(declared, list) else []:
        if not isinstance(e, dict):
            continue
        method, path, handler = str(e.get("method") or "").upper(), _normalize_path(e.get("path")), str(
            e.get("handler") or "")
        if method and path and handler:
            seen[f"{method} {path}"] = {"method": method, "path": path, "handler": handler}
    endpoints = []
    for e in sorted(seen.values(), key=lambda e: e["path"]):
        endpoints.append({"id": str(uuid.uuid5(_ENDPOINT_NAMESPACE, f"{row[0]}:{e['method']} {e['path']}")), **e,
                          "schedulable": e["method"] in ("GET", "POST") and not _has_params(e["path"])})
    return row[0], endpoints


def resolve_endpoint(conn, tenant: str, install: str, selector: str) -> tuple[str, str] | None:
    """(method, path) for an endpoint selector, or None when it is not schedulable."""
    raw = str(selector or "").strip()
    match = _SELECTOR.match(raw)
    method = match.group(1).upper() if match else None
    path = _normalize_path(match.group(2) if match else raw)
    if not path:
        return None
    _, endpoints = registry_endpoints(conn, tenant, install)
    if endpoints:
        for e in endpoints:
            if e["path"] == path and (e["method"] == method if method else e["method"] in ("GET", "POST")):
                return (e["method"], e["path"]) if e["schedulable"] else None
        return None
    method = method or "POST"
    if method not in ("GET", "POST") or _has_params(path):
        return None
    return method, path


# -- the route -----------------------------------------------------------------------------

def _zod_error(message: str) -> tuple[int, dict]:
    return 400, {"error": "Validation error", "details": {"formErrors": [message], "fieldErrors": {}}}


def _check_str(body: dict, name: str, lo: int, hi: int, optional: bool) -> None:
    """The route's zod schema: a string of lo..hi characters (or absent when optional)."""
    if name not in body or body[name] is None:
        if optional:
            return
        raise _Zod(f"{name} is required")
    value = body[name]
    if not isinstance(value, str) or not lo <= len(value) <= hi:
        raise _Zod(f"{name} must be a string of {lo}-{hi} characters")


class _Zod(Exception):
    pass


def handle(db_path: str, tenant: str, install: str, body: dict) -> tuple[int, Any]:
    """One operation of the scheduler route: ``(HTTP status, JSON body)`` as the server answers."""
    conn = open_db(db_path).conn
    op = body.get("operation")
    try:
        if op in ("get", "update", "delete"):
            schedule_id = body.get("scheduleId")
            if not isinstance(schedule_id, str) or not _UUID.match(schedule_id):
                raise _Zod("scheduleId must be a UUID")
        if op == "create":
            _check_str(body, "endpoint", 1, 256, False)
            _check_str(body, "cron", 1, 128, False)
        if op == "update":
            _check_str(body, "endpoint", 1, 256, True)
            _check_str(body, "cron", 1, 128, True)
        if op in ("create", "update"):
            _check_str(body, "timezone", 0, 64, True)
            _check_str(body, "name", 0, 128, True)
            if "enabled" in body and body["enabled"] is not None and not isinstance(body["enabled"], bool):
                raise _Zod("enabled must be a boolean")
    except _Zod as e:
        return _zod_error(str(e))

    if op == "list":
        rows = _rows(conn, "SELECT * FROM ext_schedule WHERE tenant_id = ? AND install_id = ? "
                           "ORDER BY created_at, rowid", (tenant, install))
        return 200, {"schedules": [_info(r) for r in rows]}
    if op == "get":
        row = _row(conn, tenant, install, body["scheduleId"])
        return 200, {"schedule": _info(row) if row else None}
    if op == "getEndpoints":
        return 200, {"endpoints": registry_endpoints(conn, tenant, install)[1]}
    if op == "create":
        result = _create(conn, tenant, install, body)
        return (201 if result["success"] else 400), result
    if op == "update":
        result = _update(conn, tenant, install, body["scheduleId"], body)
        return (200 if result["success"] else 400), result
    if op == "delete":
        result = _delete(conn, tenant, install, body["scheduleId"])
        return (200 if result["success"] else 400), result
    return 400, {"error": "Unsupported operation"}


def _rows(conn, sql: str, args: tuple) -> list[dict]:
    cur = conn.execute(sql, args)
    names = [c[0] for c in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _row(conn, tenant: str, install: str, schedule_id: str) -> dict | None:
    rows = _rows(conn, "SELECT * FROM ext_schedule WHERE id = ? AND tenant_id = ? AND install_id = ?",
                 (schedule_id, tenant, install))
    return rows[0] if rows else None


def _info(row: dict) -> dict:
    """A row in the server's ScheduleInfo JSON shape."""
    payload = json.loads(row["payload"]) if row["payload"] else None
    return {"id": row["id"], "endpointPath": row["endpoint_path"], "endpointMethod": row["endpoint_method"],
            "name": row["name"], "cron": row["cron"], "timezone": row["timezone"], "enabled": bool(row["enabled"]),
            "payload": payload, "lastRunAt": row["last_run_at"], "lastRunStatus": row["last_run_status"],
            "lastError": row["last_error"], "createdAt": row["created_at"]}


def _failure(e: InputError) -> dict:
    return {"success": False, "error": str(e), "fieldErrors": {e.field: str(e)}}


_NAME_TAKEN = "Schedule name already in use for this extension"
_NOT_SCHEDULABLE = "Endpoint not found or not schedulable"


def _create(conn, tenant: str, install: str, body: dict) -> dict:
    try:
        cron = validate_cron(body.get("cron"))
        tz = validate_timezone(body.get("timezone"))
        enabled = body["enabled"] if isinstance(body.get("enabled"), bool) else True
        payload = validate_payload(body.get("payload"))
        name = validate_name(body.get("name"))
    except InputError as e:
        return _failure(e)
    endpoint = resolve_endpoint(conn, tenant, install, body.get("endpoint"))
    if endpoint is None:
        return {"success": False, "error": _NOT_SCHEDULABLE, "fieldErrors": {"endpoint": _NOT_SCHEDULABLE}}
    schedule_id = str(uuid.uuid4())
    conn.execute("BEGIN IMMEDIATE")
    try:
        (count,) = conn.execute("SELECT count(*) FROM ext_schedule WHERE tenant_id = ? AND install_id = ?",
                                (tenant, install)).fetchone()
        if count >= MAX_SCHEDULES_PER_INSTALL:
            conn.execute("ROLLBACK")
            return {"success": False, "error": "Too many schedules (max 50 per extension install)"}
        if name is not None and _name_taken(conn, tenant, install, name, None):
            conn.execute("ROLLBACK")
            return {"success": False, "error": _NAME_TAKEN, "fieldErrors": {"name": _NAME_TAKEN}}
        conn.execute(
            "INSERT INTO ext_schedule (id, tenant_id, install_id, endpoint_path, endpoint_method, name, cron, "
            "timezone, enabled, payload, next_run_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (schedule_id, tenant, install, endpoint[1], endpoint[0], name, cron, tz, int(enabled), payload,
             next_run_at(cron, tz) if enabled else None))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return {"success": True, "scheduleId": schedule_id}


def _update(conn, tenant: str, install: str, schedule_id: str, body: dict) -> dict:
    try:
        cron = validate_cron(body["cron"]) if body.get("cron") else None
        tz = validate_timezone(body["timezone"]) if body.get("timezone") else None
        payload = validate_payload(body["payload"]) if body.get("payload") is not None else None
        name = validate_name(body["name"]) if "name" in body else None
    except InputError as e:
        return _failure(e)
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = _row(conn, tenant, install, schedule_id)
        if current is None:
            conn.execute("ROLLBACK")
            return {"success": False, "error": "Schedule not found"}
        patch: dict[str, Any] = {}
        if body.get("endpoint"):
            endpoint = resolve_endpoint(conn, tenant, install, body["endpoint"])
            if endpoint is None:
                conn.execute("ROLLBACK")
                return {"success": False, "error": _NOT_SCHEDULABLE,
                        "fieldErrors": {"endpoint": _NOT_SCHEDULABLE}}
            patch["endpoint_method"], patch["endpoint_path"] = endpoint
        if cron:
            patch["cron"] = cron
        if tz:
            patch["timezone"] = tz
        if "name" in body:
            if name is not None and _name_taken(conn, tenant, install, name, schedule_id):
                conn.execute("ROLLBACK")
                return {"success": False, "error": _NAME_TAKEN, "fieldErrors": {"name": _NAME_TAKEN}}
            patch["name"] = name
        if "payload" in body:
            patch["payload"] = payload
        if isinstance(body.get("enabled"), bool):
            patch["enabled"] = int(body["enabled"])
        effective = {**current, **patch}
        if (effective["cron"], effective["timezone"], bool(effective["enabled"])) != (
                current["cron"], current["timezone"], bool(current["enabled"])):
            patch["next_run_at"] = (next_run_at(effective["cron"], effective["timezone"])
                                    if effective["enabled"] else None)
        sets = ", ".join(f"{k} = ?" for k in patch)
        conn.execute(f"UPDATE ext_schedule SET {sets}{', ' if sets else ''}"
                     "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?",
                     (*patch.values(), schedule_id))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return {"success": True}


def _delete(conn, tenant: str, install: str, schedule_id: str) -> dict:
    cur = conn.execute("DELETE FROM ext_schedule WHERE id = ? AND tenant_id = ? AND install_id = ?",
                       (schedule_id, tenant, install))
    if cur.rowcount == 0:
        return {"success": False, "error": "Schedule not found"}
    return {"success": True}


def _name_taken(conn, tenant: str, install: str, name: str, except_id: str | None) -> bool:
    row = conn.execute("SELECT 1 FROM ext_schedule WHERE tenant_id = ? AND install_id = ? AND name = ? "
                       "AND id IS NOT ?", (tenant, install, name, except_id)).fetchone()
    return row is not None


__all__ = ["handle", "next_run_at", "validate_cron", "validate_timezone", "validate_payload", "validate_name",
           "registry_endpoints", "resolve_endpoint", "InputError", "MAX_SCHEDULES_PER_INSTALL"]
