"""The Alga server's internal extension API (reference §4.11), the seam of every data host interface.

``POST /api/internal/ext-{area}/install/{install_id}`` with ``{..payload, "operation": op}`` for
the storage, scheduler, invoicing, clients and services areas. Two implementations answer the
same operations with the same JSON and statuses: storage/alga/internal_api.py over HTTP
(attached mode) and storage/registry/internal_api.py on SQLite (standalone mode). A host
interface therefore has one code path, whichever mode the worker runs in.
"""
from __future__ import annotations

from typing import Any, Protocol


class ApiError(Exception):
    """Why a call gave no JSON answer.

    ``kind`` is ``"base"`` / ``"token"`` (not configured), ``"transport"``, ``"json"`` (a 2xx body
    that is not JSON) or ``"status"`` (non-2xx: see ``status``, ``text`` and ``body``, the parsed
    JSON of the error answer or None).
    """

    def __init__(self, kind: str, status: int | None = None, text: str = "", body: Any = None):
        super().__init__(kind if status is None else f"{kind} {status}")
        self.kind = kind
        self.status = status
        self.text = text
        self.body = body


class InternalApi(Protocol):
    def call(self, area: str, operation: str, payload: dict[str, Any], *, tenant: str, install: str,
             timeout_s: float, log_extra: dict[str, str]) -> Any:
        """The decoded JSON answer (None for an empty 2xx body); raises ApiError."""


def pick(obj: dict, *names: str, default: Any = None) -> Any:
    """The first of ``names`` present in ``obj`` (camelCase then snake_case lookups)."""
    for name in names:
        if name in obj:
            return obj[name]
    return default
