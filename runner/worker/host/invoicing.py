"""alga:extension/invoicing: ``create-manual-invoice`` (reference §4.9).

The internal API's ``invoicing`` area (the Alga server when attached, the
standalone registry otherwise), whose answer is parsed as the reference does
(fields at the top level, then in a nested ``invoice`` object). Every failure is
a result with ``success=false`` and a text; a refusal's ``fieldErrors`` are kept.
"""
from __future__ import annotations

import json
import math
from typing import Any

from runner.worker.host.call import CallContext
from runner.worker.host.values import get, record
from storage.api import ApiError

CAP = "cap:invoice.manual.create"
_ITEM_OPTIONAL = (("is_discount", "isDiscount"), ("discount_type", "discountType"),
                  ("applies_to_item_id", "appliesToItemId"), ("applies_to_service_id", "appliesToServiceId"))
_INVOICE_OPTIONAL = (("invoice_date", "invoiceDate"), ("due_date", "dueDate"), ("po_number", "poNumber"))


def _failure(error: str):
    return record(success=False, invoice_id=None, invoice_number=None, status=None, subtotal=None, tax=None,
                  total=None, error=error, field_errors=None)


def create_manual_invoice(ctx: CallContext, invoice):
    if not ctx.allows(CAP):
        return _failure(f"Permission denied: {CAP} not granted")
    if ctx.ids.install is None:
        return _failure("Permission denied: install_id missing")
    try:
        reply = ctx.api("invoicing", "createManualInvoice", build_payload(invoice))
    except ApiError as e:
        # A refusal that says why (400 {success: false, error, fieldErrors}) keeps its field errors;
        # the reference reports every non-2xx as text only.
        if isinstance(e.body, dict) and e.body.get("success") is False and isinstance(e.body.get("error"), str):
            return parse_result(e.body)
        return _failure(_error_text(e))
    return parse_result(reply)


def build_payload(invoice) -> dict[str, Any]:
    """The request body; absent optional fields are left out, never null."""
    items = []
    for item in get(invoice, "items") or []:
        entry: dict[str, Any] = {"serviceId": get(item, "service_id"), "quantity": _number(get(item, "quantity")),
                                 "description": get(item, "description"), "rate": _number(get(item, "rate"))}
        for attr, key in _ITEM_OPTIONAL:
            value = get(item, attr)
            if value is not None:
                entry[key] = value
        items.append(entry)
    payload: dict[str, Any] = {"clientId": get(invoice, "client_id"), "items": items}
    for attr, key in _INVOICE_OPTIONAL:
        value = get(invoice, attr)
        if value is not None:
            payload[key] = value
    return payload


def _number(value: Any) -> float | int:
    return value if isinstance(value, (int, float)) and math.isfinite(value) else 0


_ERRORS = {"base": "invoicing base URL not configured", "token": "runner auth token not configured",
           "transport": "transport failure", "json": "invalid JSON response"}


def _error_text(e: ApiError) -> str:
    return _ERRORS.get(e.kind) or f"http {e.status}: {e.text}"


def parse_result(reply: Any):
    if not isinstance(reply, dict):
        return _failure("invalid response")
    nested = reply.get("invoice") if isinstance(reply.get("invoice"), dict) else {}

    def text(*names: str) -> str | None:
        for name in names:
            for source in (reply, nested):
                if isinstance(source.get(name), str):
                    return source[name]
        return None

    def number(name: str) -> float | None:
        for source in (reply, nested):
            value = source.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        return None

    field_errors = reply.get("fieldErrors", reply.get("field_errors"))
    if field_errors is not None and not isinstance(field_errors, str):
        field_errors = json.dumps(field_errors, separators=(",", ":"), ensure_ascii=False)
    return record(success=reply.get("success") is True, invoice_id=text("invoiceId", "invoice_id"),
                  invoice_number=text("invoiceNumber", "invoice_number"), status=text("status"),
                  subtotal=number("subtotal"), tax=number("tax"), total=number("total"),
                  error=reply["error"] if isinstance(reply.get("error"), str) else None, field_errors=field_errors)


INTERFACES = {"alga:extension/invoicing": {"create-manual-invoice": create_manual_invoice}}
