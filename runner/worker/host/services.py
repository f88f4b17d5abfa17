"""alga:extension/services: read-only service catalogue lookups (reference §4.10).

The internal API's ``services`` area: the Alga server when attached, the
``seed_service`` table when standalone (storage/registry/catalogue.py: filters by
``item-kind``, ``is-active`` and ``billing-method``, ``search`` in name,
description or SKU, ordered by name, paged).
Preconditions: ``cap:service.read`` and an install id, else ``not-allowed``.
"""
from __future__ import annotations

from typing import Any

from runner.worker.host import catalogue as cat
from runner.worker.host.call import CallContext
from runner.worker.host.values import record
from storage.api import pick

CAP = "cap:service.read"
ITEM_KINDS = ("service", "product")
BILLING_METHODS = ("fixed", "hourly", "usage")


def list_services(ctx: CallContext, query):
    filters = (("search", "search"), ("item_kind", "itemKind"), ("is_active", "isActive"),
               ("billing_method", "billingMethod"))
    return cat.list_items(ctx, CAP, "services", query, filters, parse_service)


def get_service(ctx: CallContext, service_id: str):
    return cat.get_item(ctx, CAP, "services", "serviceId", service_id, parse_service)


def parse_service(value: Any):
    """A service-summary from the server's JSON; Malformed for unknown enum values or wrong types."""
    if not isinstance(value, dict):
        raise cat.Malformed("service is not an object")
    kind = pick(value, "itemKind", "item_kind")
    method = pick(value, "billingMethod", "billing_method")
    if kind not in ITEM_KINDS or method not in BILLING_METHODS:
        raise cat.Malformed("itemKind / billingMethod")
    rate = pick(value, "defaultRate", "default_rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float))):
        raise cat.Malformed("defaultRate")
    unit = cat.opt_str(value, "unitOfMeasure", "unit_of_measure")
    return record(service_id=cat.req_str(value, "serviceId", "service_id"),
                  service_name=cat.req_str(value, "serviceName", "service_name"),
                  service_type_id=cat.opt_str(value, "serviceTypeId", "service_type_id"),
                  service_type_name=cat.opt_str(value, "serviceTypeName", "service_type_name"),
                  item_kind=kind, billing_method=method, default_rate=float(rate or 0),
                  unit_of_measure=unit or "", is_active=cat.opt_bool(value, True, "isActive", "is_active"),
                  sku=cat.opt_str(value, "sku"))


INTERFACES = {"alga:extension/services": {"list-services": list_services, "get-service": get_service}}
