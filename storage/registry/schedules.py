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
disabled schedules. The scheduler loop (standalone/scheduler.py) reads :func:`due`,
takes a run with :func:`claim` and writes its outcome with :func:`record_run`.
"""
from __future__ import annotations

import json
import re
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlite_utils
from croniter import croniter

from storage.registry.db import first, transaction

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
    return iso(croniter(cron, start).get_next(datetime))


# -- endpoints -----------------------------------------------------------------------------

def _normalize_path(path: Any) -> str:
    raw = str(path or "").strip()
    if not raw:
        return ""
    return re.sub(r"/{2,}", "/", raw if raw.startswith("/") else "/" + raw)


def _has_params(path: str) -> bool:
    return ":" in path or "{" in path or "}" in path


def registry_endpoints(db: sqlite_utils.Database, tenant: str, install: str) -> tuple[str | None, list[dict]]:
    """(version id, endpoints of that version) for the install, or (None, []) when unknown."""
    try:
        row = first(db, "SELECT v.id, v.api_endpoints FROM tenant_extension_install i "
                        "JOIN extension_version v ON v.id = i.version_id WHERE i.id = ? AND i.tenant_id = ?",
                    [install, tenant])
    except sqlite3.OperationalError:  # registry tables missing: nothing known
        return None, []
    if row is None:
        return None, []
    version_id = row["id"]
    try:
        declared = json.loads(row["api_endpoints"] or "[]")
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
        endpoints.append({"id": str(uuid.uuid5(_ENDPOINT_NAMESPACE, f"{version_id}:{e['method']} {e['path']}")),
                          **e, "schedulable": e["method"] in ("GET", "POST") and not _has_params(e["path"])})
    return version_id, endpoints


def resolve_endpoint(db: sqlite_utils.Database, tenant: str, install: str, selector: str) -> tuple[str, str] | None:
    """(method, path) for an endpoint selector, or None when it is not schedulable."""
    raw = str(selector or "").strip()
    match = _SELECTOR.match(raw)
    method = match.group(1).upper() if match else None
    path = _normalize_path(match.group(2) if match else raw)
    if not path:
        return None
    _, endpoints = registry_endpoints(db, tenant, install)
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


def handle(db: sqlite_utils.Database, tenant: str, install: str, body: dict) -> tuple[int, Any]:
    """One operation of the scheduler route: ``(HTTP status, JSON body)`` as the server answers."""
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
        rows = db.query("SELECT * FROM ext_schedule WHERE tenant_id = ? AND install_id = ? "
                        "ORDER BY created_at, rowid", [tenant, install])
        return 200, {"schedules": [_info(r) for r in rows]}
    if op == "get":
        row = _row(db, tenant, install, body["scheduleId"])
        return 200, {"schedule": _info(row) if row else None}
    if op == "getEndpoints":
        return 200, {"endpoints": registry_endpoints(db, tenant, install)[1]}
    if op == "create":
        result = _create(db, tenant, install, body)
        return (201 if result["success"] else 400), result
    if op == "update":
        result = _update(db, tenant, install, body["scheduleId"], body)
        return (200 if result["success"] else 400), result
    if op == "delete":
        result = _delete(db, tenant, install, body["scheduleId"])
        return (200 if result["success"] else 400), result
    return 400, {"error": "Unsupported operation"}


def _row(db, tenant: str, install: str, schedule_id: str) -> dict | None:
    return first(db, "SELECT * FROM ext_schedule WHERE id = ? AND tenant_id = ? AND install_id = ?",
                 [schedule_id, tenant, install])


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


def _create(db, tenant: str, install: str, body: dict) -> dict:
    try:
        cron = validate_cron(body.get("cron"))
        tz = validate_timezone(body.get("timezone"))
        enabled = body["enabled"] if isinstance(body.get("enabled"), bool) else True
        payload = validate_payload(body.get("payload"))
        name = validate_name(body.get("name"))
    except InputError as e:
        return _failure(e)
    endpoint = resolve_endpoint(db, tenant, install, body.get("endpoint"))
    if endpoint is None:
        return {"success": False, "error": _NOT_SCHEDULABLE, "fieldErrors": {"endpoint": _NOT_SCHEDULABLE}}
    schedule_id = str(uuid.uuid4())
    with transaction(db):
        count = first(db, "SELECT count(*) AS n FROM ext_schedule WHERE tenant_id = ? AND install_id = ?",
                      [tenant, install])["n"]
        if count >= MAX_SCHEDULES_PER_INSTALL:
            return {"success": False, "error": "Too many schedules (max 50 per extension install)"}
        if name is not None and _name_taken(db, tenant, install, name, None):
            return {"success": False, "error": _NAME_TAKEN, "fieldErrors": {"name": _NAME_TAKEN}}
        db.execute(
            "INSERT INTO ext_schedule (id, tenant_id, install_id, endpoint_path, endpoint_method, name, cron, "
            "timezone, enabled, payload, next_run_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [schedule_id, tenant, install, endpoint[1], endpoint[0], name, cron, tz, int(enabled), payload,
             next_run_at(cron, tz) if enabled else None])
    return {"success": True, "scheduleId": schedule_id}


def _update(db, tenant: str, install: str, schedule_id: str, body: dict) -> dict:
    try:
        cron = validate_cron(body["cron"]) if body.get("cron") else None
        tz = validate_timezone(body["timezone"]) if body.get("timezone") else None
        payload = validate_payload(body["payload"]) if body.get("payload") is not None else None
        name = validate_name(body["name"]) if "name" in body else None
    except InputError as e:
        return _failure(e)
    with transaction(db):
        current = _row(db, tenant, install, schedule_id)
        if current is None:
            return {"success": False, "error": "Schedule not found"}
        patch: dict[str, Any] = {}
        if body.get("endpoint"):
            endpoint = resolve_endpoint(db, tenant, install, body["endpoint"])
            if endpoint is None:
                return {"success": False, "error": _NOT_SCHEDULABLE, "fieldErrors": {"endpoint": _NOT_SCHEDULABLE}}
            patch["endpoint_method"], patch["endpoint_path"] = endpoint
        if cron:
            patch["cron"] = cron
        if tz:
            patch["timezone"] = tz
        if "name" in body:
            if name is not None and _name_taken(db, tenant, install, name, schedule_id):
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
        db.execute(f"UPDATE ext_schedule SET {sets}{', ' if sets else ''}"
                   "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?", [*patch.values(), schedule_id])
    return {"success": True}


def _delete(db, tenant: str, install: str, schedule_id: str) -> dict:
    cur = db.execute("DELETE FROM ext_schedule WHERE id = ? AND tenant_id = ? AND install_id = ?",
                     [schedule_id, tenant, install])
    if cur.rowcount == 0:
        return {"success": False, "error": "Schedule not found"}
    return {"success": True}


def _name_taken(db, tenant: str, install: str, name: str, except_id: str | None) -> bool:
    return first(db, "SELECT 1 FROM ext_schedule WHERE tenant_id = ? AND install_id = ? AND name = ? "
                     "AND id IS NOT ?", [tenant, install, name, except_id]) is not None


# -- the scheduler loop's queries ------------------------------------------------------------

@dataclass(frozen=True)
class Due:
    id: str
    tenant_id: str
    install_id: str
    endpoint_path: str
    endpoint_method: str
    cron: str
    timezone: str
    payload: str | None
    next_run_at: str


def due(db: sqlite_utils.Database, now: datetime) -> list[Due]:
    """Enabled schedules whose next run is at or before ``now``, oldest first."""
    rows = db.query("SELECT id, tenant_id, install_id, endpoint_path, endpoint_method, cron, timezone, payload, "
                    "next_run_at FROM ext_schedule WHERE enabled = 1 AND next_run_at IS NOT NULL "
                    "AND julianday(next_run_at) <= julianday(?) ORDER BY next_run_at", [iso(now)])
    return [Due(**row) for row in rows]


def claim(db: sqlite_utils.Database, run: Due, following: str) -> bool:
    """Move ``run`` to its next time; True for the one process whose update found it unchanged."""
    return db.execute("UPDATE ext_schedule SET next_run_at = ? WHERE id = ? AND next_run_at = ?",
                      [following, run.id, run.next_run_at]).rowcount > 0


def disable(db: sqlite_utils.Database, schedule_id: str) -> None:
    """Stop a schedule that can never run (an invalid cron or time zone stored by hand)."""
    db.execute("UPDATE ext_schedule SET enabled = 0, next_run_at = NULL WHERE id = ?", [schedule_id])


def record_run(db: sqlite_utils.Database, schedule_id: str, when: datetime, status: str, error: str | None) -> None:
    db.execute("UPDATE ext_schedule SET last_run_at = ?, last_run_status = ?, last_error = ?, updated_at = ? "
               "WHERE id = ?", [iso(when), status, error[:4000] if error else None,
                                iso(datetime.now(timezone.utc)), schedule_id])


def iso(when: datetime) -> str:
    """The column format: UTC, milliseconds, ``Z``."""
    when = when.astimezone(timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
