"""The internal extension API answered from the SQLite registry (standalone mode).

The same areas, operations, JSON and statuses as the Alga server's
``/api/internal/ext-*`` routes (storage/alga/internal_api.py), so host interfaces do
not know which one they talk to. Non-2xx answers raise :class:`storage.api.ApiError`
exactly as an HTTP answer would.
"""
from __future__ import annotations

import functools
import json
import logging
import sqlite3
from typing import Any, Callable

from storage.api import ApiError
from storage.registry import catalogue, invoices, kv, schedules
from storage.registry.db import open_db

log = logging.getLogger("storage.registry")


class LocalInternalApi:
    def __init__(self, db_path: str, max_value_bytes: int):
        self.db_path = db_path
        self.areas: dict[str, Callable[..., tuple[int, Any]]] = {
            "storage": functools.partial(kv.handle, max_value_bytes=max_value_bytes),
            "scheduler": schedules.handle,
            "clients": catalogue.clients,
            "services": catalogue.services,
            "invoicing": invoices.handle,
        }

    def call(self, area: str, operation: str, payload: dict[str, Any], *, tenant: str, install: str,
             timeout_s: float, log_extra: dict[str, str]) -> Any:
        handler = self.areas.get(area)
        if handler is None:
            raise ApiError("status", 404, "no such internal API")
        try:
            status, body = handler(open_db(self.db_path), tenant, install, {**payload, "operation": operation})
        except sqlite3.Error as e:  # e.g. still locked after the busy timeout: an error value, never a trap
            log.error("ext-%s %s failed: %s", area, operation, e, extra=log_extra)
            raise ApiError("transport") from None
        if not 200 <= status < 300:
            text = json.dumps(body)
            log.warning("ext-%s %s answered %s", area, operation, status, extra={**log_extra, "status": status,
                                                                                  "body": text[:500]})
            raise ApiError("status", status, text, body)
        return body
