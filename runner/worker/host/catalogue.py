"""What clients.py and services.py share: the internal-API request, list parsing and paging.

Not an interface module (no ``INTERFACES``): the catalogue interfaces are
clients.py and services.py.
"""
from __future__ import annotations

from typing import Any, Callable

from runner.worker.host.call import CallContext
from runner.worker.host.values import get, record
from runner.worker.wasm_compat import Err
from storage.api import ApiError, pick

_STATUS = {400: "invalid-input", 401: "not-allowed", 403: "not-allowed"}


class Malformed(ValueError):
    """An answer that does not have the documented shape (the guest gets ``internal``)."""


def request(ctx: CallContext, area: str, operation: str, body: dict[str, Any]) -> Any:
    """The reply of ``operation``, or an ``Err`` (not-allowed / invalid-input / internal)."""
    if ctx.user is not None:
        body["user"] = {"userId": ctx.user.get("user_id"), "userType": ctx.user.get("user_type")}
    try:
        return ctx.api(area, operation, body)
    except ApiError as e:
        return Err(_STATUS.get(e.status, "internal") if e.kind == "status" else "internal")


def list_items(ctx: CallContext, cap: str, area: str, query, filters: tuple[tuple[str, str], ...],
               parse_item: Callable[[Any], Any]) -> Any:
    """``list-clients`` / ``list-services``: checks, paging, the call, the parsed page."""
    if not ctx.allows(cap) or ctx.ids.install is None:
        return Err("not-allowed")
    paging = page_params(query, get)
    if paging is None:
        return Err("invalid-input")
    params: dict[str, Any] = {key: get(query, attr) for attr, key in filters if get(query, attr) is not None}
    params.update(page=paging[0], pageSize=paging[1])
    reply = request(ctx, area, "list", {"input": params})
    if isinstance(reply, Err):
        return reply
    try:
        return parse_list(reply, parse_item)
    except Malformed:
        return Err("internal")


def get_item(ctx: CallContext, cap: str, area: str, id_key: str, item_id: str,
             parse_item: Callable[[Any], Any]) -> Any:
    """``get-client`` / ``get-service``: some, none or an err arm."""
    if not ctx.allows(cap) or ctx.ids.install is None:
        return Err("not-allowed")
    reply = request(ctx, area, "get", {"input": {id_key: item_id}})
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
