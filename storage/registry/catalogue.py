"""Clients and services of the standalone registry (tables ``seed_client``, ``seed_service``).

:func:`clients` and :func:`services` answer the internal API's ``clients`` and ``services``
operations (list, get) as the Alga server's ``clientReadService`` and service catalogue
do: list filters, a case-insensitive search, order by name, paging; ``get`` answers
``{"item": object | null}``. Rows hold each item's JSON (camelCase or snake_case keys),
written by :func:`replace_seed` from ``flask ext seed`` files.
"""
from __future__ import annotations

import json
from typing import Any, Callable

import sqlite_utils

from storage.api import pick
from storage.registry.db import transaction

INVALID = (400, {"error": "Invalid request payload", "code": "INVALID_INPUT"})


def replace_seed(db: sqlite_utils.Database, tenant: str, clients: list[dict], services: list[dict]) -> None:
    """Replace the tenant's clients and services (a seed file can be edited and loaded again)."""
    with transaction(db):
        for table, id_column, key, items in (("seed_client", "client_id", "clientId", clients),
                                             ("seed_service", "service_id", "serviceId", services)):
            db.execute(f"DELETE FROM {table} WHERE tenant_id = ?", [tenant])
            for item in items:
                db.execute(f"INSERT INTO {table} (tenant_id, {id_column}, data) VALUES (?, ?, ?)",
                           [tenant, item[key], json.dumps(item)])


def clients(db: sqlite_utils.Database, tenant: str, _install: str, body: dict) -> tuple[int, Any]:
    def narrow(items: list[dict], params: dict, search: str) -> list[dict]:
        if not params.get("includeInactive"):
            items = [c for c in items if pick(c, "isInactive", "is_inactive") is not True]
        return _search(items, search, ("clientName", "client_name"), ("clientId", "client_id"),
                       ("billingEmail", "billing_email"))

    return _answer(body, _rows(db, "seed_client", "client_id", "clientId", tenant), ("clientId", "client_id"),
                   narrow, ("clientName", "client_name"))


def services(db: sqlite_utils.Database, tenant: str, _install: str, body: dict) -> tuple[int, Any]:
    def narrow(items: list[dict], params: dict, search: str) -> list[dict]:
        for key, keys in (("itemKind", ("itemKind", "item_kind")),
                          ("billingMethod", ("billingMethod", "billing_method"))):
            if params.get(key) is not None:
                items = [s for s in items if pick(s, *keys) == params[key]]
        if isinstance(params.get("isActive"), bool):
            items = [s for s in items if (pick(s, "isActive", "is_active") is not False) == params["isActive"]]
        return _search(items, search, ("serviceName", "service_name"), ("description",), ("sku",))

    return _answer(body, _rows(db, "seed_service", "service_id", "serviceId", tenant), ("serviceId", "service_id"),
                   narrow, ("serviceName", "service_name"))


def _answer(body: dict, items: list[dict], id_keys: tuple[str, str],
            narrow: Callable[[list[dict], dict, str], list[dict]], name_keys: tuple[str, str]) -> tuple[int, Any]:
    """``get``: the item or null; ``list``: the narrowed, searched, sorted page."""
    params = body.get("input") or {}
    if body.get("operation") == "get":
        return 200, {"item": _find(items, params.get(id_keys[0]), *id_keys)}
    search = params.get("search") or ""
    if not isinstance(search, str) or len(search) > 200:
        return INVALID
    return _page(narrow(items, params, search.strip()), params, *name_keys)


def _rows(db: sqlite_utils.Database, table: str, id_column: str, id_key: str, tenant: str) -> list[dict]:
    """The tenant's items as dicts (``id_key`` filled from the id column when the JSON lacks it)."""
    out = []
    for row in db.query(f"SELECT {id_column} AS id, data FROM {table} WHERE tenant_id = ?", [tenant]):
        try:
            item = json.loads(row["data"])
        except ValueError:
            continue
        if isinstance(item, dict):
            if id_key not in item and id_column not in item:
                item[id_key] = row["id"]
            out.append(item)
    return out


def _find(items: list[dict], wanted: Any, *id_keys: str) -> dict | None:
    return next((i for i in items if pick(i, *id_keys) == wanted), None)


def _search(items: list[dict], search: str, *keys: tuple[str, ...]) -> list[dict]:
    """Items where ``search`` occurs (case-insensitive) in any of the fields ``keys``; all for no search."""
    if not search:
        return items
    term = search.casefold()
    return [i for i in items if any(term in str(pick(i, *k) or "").casefold() for k in keys)]


def _page(items: list[dict], params: dict, *name_keys: str) -> tuple[int, Any]:
    """Sort by name, then the requested page, as the server's list answer."""
    page, page_size = params.get("page", 1), params.get("pageSize", 25)
    if not (type(page) is int and 1 <= page <= 10_000 and type(page_size) is int and 1 <= page_size <= 100):
        return INVALID
    items = sorted(items, key=lambda i: str(pick(i, *name_keys) or "").casefold())
    start = (page - 1) * page_size
    return 200, {"items": items[start:start + page_size], "totalCount": len(items), "page": page,
                 "pageSize": page_size}
