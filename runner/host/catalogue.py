"""What clients.py and services.py share: the request in both modes, list parsing and paging.

Not an interface module (no ``INTERFACES``): the catalogue interfaces are
runner/host/clients.py and runner/host/services.py.
"""
from __future__ import annotations

import json
import logging
import sqlite3
from typing import Any, Callable

from runner.host import alga_api
from runner.host.alga_api import pick
from runner.host.call import CallContext
from runner.host.values import get, record
from runner.wasm_compat import Err
from storage.db import open_db

log = logging.getLogger("runner.host.catalogue")

_STATUS = {400: "invalid-input", 401: "not-allowed", 403: "not-allowed"}
INVALID = (400, {"error": "Invalid request payload", "code": "INVALID_INPUT"})


class Malformed(ValueError):
    """An answer that does not have the documented shape (the guest gets ``internal``)."""


def request(ctx: CallContext, area: str, operation: str, body: dict[str, Any],
            local: Callable[[str, str, str, dict], tuple[int, Any]]) -> Any:
    """The reply of ``operation``, or an ``Err`` (not-allowed / invalid-input / internal)."""
    if ctx.user is not None:
        body["user"] = {"userId": ctx.user.get("user_id"), "userType": ctx.user.get("user_type")}
    if not alga_api.attached(ctx.settings):
        try:
            status, reply = local(ctx.settings.registry_db, ctx.tenant_id, operation, body)
        except sqlite3.Error as e:
            log.error("%s %s failed: %s", area, operation, e, extra=ctx.ids)
            return Err("internal")
        return reply if status == 200 else Err(_STATUS.get(status, "internal"))
    try:
        return alga_api.call(ctx, area, operation, body)
    except alga_api.ApiError as e:
        return Err(_STATUS.get(e.status, "internal") if e.kind == "status" else "internal")


def list_items(ctx: CallContext, cap: str, area: str, query, filters: tuple[tuple[str, str], ...],
               parse_item: Callable[[Any], Any], local) -> Any:
    """``list-clients`` / ``list-services``: checks, paging, the call, the parsed page."""
    if not ctx.allows(cap) or ctx.install_id is None:
        return Err("not-allowed")
    paging = page_params(query, get)
    if paging is None:
        return Err("invalid-input")
    params: dict[str, Any] = {key: get(query, attr) for attr, key in filters if get(query, attr) is not None}
    params.update(page=paging[0], pageSize=paging[1])
    reply = request(ctx, area, "list", {"input": params}, local)
    if isinstance(reply, Err):
        return reply
    try:
        return parse_list(reply, parse_item)
    except Malformed:
        return Err("internal")


def get_item(ctx: CallContext, cap: str, area: str, id_key: str, item_id: str,
             parse_item: Callable[[Any], Any], local) -> Any:
    """``get-client`` / ``get-service``: some, none or an err arm."""
    if not ctx.allows(cap) or ctx.install_id is None:
        return Err("not-allowed")
    reply = request(ctx, area, "get", {"input": {id_key: item_id}}, local)
    return reply if isinstance(reply, Err) else parse_item_reply(reply, parse_item)


def parse_list(reply: Any, parse_item: Callable[[Any], Any]):
    """``{items, totalCount, page, pageSize}`` (camelCase or snake_case) -> the list-result record."""
    if not isinstance(reply, dict):
        raise Malformed("not an object")
    items = reply.get("items")
    if items is None:
        items = []
    if not isinstance(items, list):
        raise Malformed("items")
    return record(items=[parse_item(i) for i in items], total_count=_u32(pick(reply, "totalCount", "total_count"), 0),
                  page=_u32(reply.get("page"), 1), page_size=_u32(pick(reply, "pageSize", "page_size"), 25))


def parse_item_reply(reply: Any, parse_item: Callable[[Any], Any]):
    """``{item: object | null}`` -> the record, None (ok(none)) or Err("internal")."""
    if not isinstance(reply, dict) or "item" not in reply:
        return Err("internal")
    if reply["item"] is None:
        return None
    try:
        return parse_item(reply["item"])
    except Malformed:
        return Err("internal")


def req_str(obj: dict, *names: str) -> str:
    value = pick(obj, *names)
    if not isinstance(value, str):
        raise Malformed(names[0])
    return value


def opt_str(obj: dict, *names: str) -> str | None:
    value = pick(obj, *names)
    if value is not None and not isinstance(value, str):
        raise Malformed(names[0])
    return value


def opt_bool(obj: dict, default: bool, *names: str) -> bool:
    value = pick(obj, *names)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise Malformed(names[0])
    return value


def _u32(value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 32:
        raise Malformed("not a u32")
    return value


def page_params(query, get) -> tuple[int, int] | None:
    """(page, page size) with the defaults 1 and 25, or None when out of range (no call is made)."""
    page = 1 if get(query, "page") is None else get(query, "page")
    page_size = 25 if get(query, "page_size") is None else get(query, "page_size")
    if page < 1 or not 1 <= page_size <= 100:
        return None
    return page, page_size


# -- standalone mode: the seed tables ------------------------------------------------------

def seed_rows(db_path: str, table: str, id_column: str, id_key: str, tenant: str) -> list[dict]:
    """The tenant's rows of a seed table as dicts (``id_key`` filled from the id column if absent)."""
    conn = open_db(db_path).conn
    out = []
    for row_id, data in conn.execute(f"SELECT {id_column}, data FROM {table} WHERE tenant_id = ?", (tenant,)):
        try:
            item = json.loads(data)
        except ValueError:
            continue
        if isinstance(item, dict):
            if id_key not in item and id_column not in item:
                item[id_key] = row_id
            out.append(item)
    return out


def find(items: list[dict], wanted: Any, *id_keys: str) -> dict | None:
    return next((i for i in items if pick(i, *id_keys) == wanted), None)


def search_filter(items: list[dict], search: str, *keys: tuple[str, ...]) -> list[dict]:
    """Items where ``search`` occurs (case-insensitive) in any of the fields ``keys``."""
    term = search.casefold()
    return [i for i in items if any(term in str(pick(i, *k) or "").casefold() for k in keys)]


def page_of(items: list[dict], params: dict, *name_keys: str) -> tuple[int, Any]:
    """Sort by name, then the requested page, as the server's list answer."""
    page, page_size = params.get("page", 1), params.get("pageSize", 25)
    if not (type(page) is int and 1 <= page <= 10_000 and type(page_size) is int and 1 <= page_size <= 100):
        return INVALID
    items = sorted(items, key=lambda i: str(pick(i, *name_keys) or "").casefold())
    start = (page - 1) * page_size
    return 200, {"items": items[start:start + page_size], "totalCount": len(items), "page": page,
                 "pageSize": page_size}
