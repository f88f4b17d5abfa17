"""alga:extension/clients: read-only client lookups (reference §4.10).

Attached mode: ``/api/internal/ext-clients`` on the Alga server. Standalone
mode: the ``seed_client`` table (JSON ``data`` per client, camelCase or
snake_case keys), filtered, sorted and paged as the server's
``clientReadService`` does: inactive clients only with ``include-inactive``,
``search`` in name, id or billing email (case-insensitive), ordered by name.
Preconditions: ``cap:client.read`` and an install id, else ``not-allowed``.
"""
from __future__ import annotations

from typing import Any

from runner.host import catalogue as cat
from runner.host.alga_api import pick
from runner.host.call import CallContext
from runner.host.values import record

CAP = "cap:client.read"


def list_clients(ctx: CallContext, query):
    filters = (("search", "search"), ("include_inactive", "includeInactive"))
    return cat.list_items(ctx, CAP, "clients", query, filters, parse_client, local)


def get_client(ctx: CallContext, client_id: str):
    return cat.get_item(ctx, CAP, "clients", "clientId", client_id, parse_client, local)


def parse_client(value: Any):
    """A client-summary from the server's JSON (camelCase or snake_case); Malformed otherwise."""
    if not isinstance(value, dict):
        raise cat.Malformed("client is not an object")
    return record(client_id=cat.req_str(value, "clientId", "client_id"),
                  client_name=cat.req_str(value, "clientName", "client_name"),
                  client_type=cat.opt_str(value, "clientType", "client_type"),
                  is_inactive=cat.opt_bool(value, False, "isInactive", "is_inactive"),
                  default_currency_code=cat.opt_str(value, "defaultCurrencyCode", "default_currency_code"),
                  account_manager_id=cat.opt_str(value, "accountManagerId", "account_manager_id"),
                  account_manager_name=cat.opt_str(value, "accountManagerName", "account_manager_name"),
                  billing_email=cat.opt_str(value, "billingEmail", "billing_email"))


def local(db_path: str, tenant: str, operation: str, body: dict) -> tuple[int, Any]:
    """The server's answer, from ``seed_client``."""
    params = body.get("input") or {}
    clients = cat.seed_rows(db_path, "seed_client", "client_id", "clientId", tenant)
    if operation == "get":
        return 200, {"item": cat.find(clients, params.get("clientId"), "clientId", "client_id")}
    search = params.get("search") or ""
    if not isinstance(search, str) or len(search) > 200:
        return cat.INVALID
    if not params.get("includeInactive"):
        clients = [c for c in clients if pick(c, "isInactive", "is_inactive") is not True]
    if search.strip():
        clients = cat.search_filter(clients, search.strip(), ("clientName", "client_name"),
                                    ("clientId", "client_id"), ("billingEmail", "billing_email"))
    return cat.page_of(clients, params, "clientName", "client_name")


INTERFACES = {"alga:extension/clients": {"list-clients": list_clients, "get-client": get_client}}
