"""alga:extension/clients: read-only client lookups (reference §4.10).

The internal API's ``clients`` area: the Alga server when attached, the
``seed_client`` table when standalone (storage/registry/catalogue.py, as the
server's ``clientReadService``: inactive clients only with ``include-inactive``,
``search`` in name, id or billing email, ordered by name, paged).
Preconditions: ``cap:client.read`` and an install id, else ``not-allowed``.
"""
from __future__ import annotations

from typing import Any

from runner.worker.host import catalogue as cat
from runner.worker.host.call import CallContext
from runner.worker.host.values import record

CAP = "cap:client.read"


def list_clients(ctx: CallContext, query):
    filters = (("search", "search"), ("include_inactive", "includeInactive"))
    return cat.list_items(ctx, CAP, "clients", query, filters, parse_client)


def get_client(ctx: CallContext, client_id: str):
    return cat.get_item(ctx, CAP, "clients", "clientId", client_id, parse_client)


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


INTERFACES = {"alga:extension/clients": {"list-clients": list_clients, "get-client": get_client}}
