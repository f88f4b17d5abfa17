"""Manual invoices of the standalone registry (the internal API's ``invoicing`` area).

:func:`handle` answers ``createManualInvoice`` as the Alga server's
``/api/internal/ext-invoicing/install/{id}`` route does, against the seeded clients and
services (``flask ext seed``):

* validation as the server's: ``clientId`` and every ``serviceId``/``appliesTo*Id`` a UUID,
  at least one item, description 1-500 characters, quantity > 0, rate >= 0, a discount needs
  ``discountType`` (a percentage between 0 and 100), ``appliesTo*`` only on discounts and
  only one of them, dates ``YYYY-MM-DD``, ``poNumber`` at most 128 characters. Failures:
  400 ``{success: false, error: "Validation error", fieldErrors: {"items[0].rate": ...}}``;
* amounts are in minor units (rates rounded): an item is ``round(quantity * rate)``; a fixed
  discount ``-rate``, a percentage one that share of its target item (``appliesToItemId``, or
  the item of ``appliesToServiceId``) or of the subtotal of the non-discount items;
* tax: a service's ``taxRate`` (percent, a seed field; a service without one is not taxable,
  as a service without a tax rate in Alga), nothing for a client with ``isTaxExempt``. Per
  rate, ``ceil(base * rate / 100)`` over the positive taxable items, before discounts, shared
  out over the items by size with the remainder on the last, as Alga does;
* numbers ``INV-000001``, ``INV-000002``, ... per tenant; status ``draft``; the invoice date
  defaults to today (UTC), the due date to the invoice date;
* success: 201 ``{success: true, invoice: {invoiceId, invoiceNumber, status, subtotal, tax,
  total}}``; an unknown client or service: 400 with ``fieldErrors``.
"""
from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sqlite_utils

from storage.registry.db import first, transaction

CAP = "cap:invoice.manual.create"
NUMBER_PREFIX, NUMBER_PADDING = "INV-", 6
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", re.I)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class Refused(Exception):
    """The invoice can not be made; ``body`` is the server's answer (status 400)."""

    def __init__(self, error: str, field_errors: dict[str, str] | None = None):
        super().__init__(error)
        self.body = {"success": False, "error": error, **({"fieldErrors": field_errors} if field_errors else {})}


@dataclass
class Item:
    service_id: str
    quantity: float
    description: str
    rate: int
    is_discount: bool = False
    discount_type: str | None = None
    applies_to_item_id: str | None = None
    applies_to_service_id: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    net: int = 0
    tax_rate: float = 0.0
    tax: int = 0


@dataclass
class Order:
    client_id: str
    items: list[Item]
    invoice_date: str | None
    due_date: str | None
    po_number: str | None


def handle(db: sqlite_utils.Database, tenant: str, install: str, body: dict) -> tuple[int, Any]:
    if body.get("operation") != "createManualInvoice":
        return 400, {"error": "Unsupported operation"}
    caps = _install_capabilities(db, tenant, install)
    if caps is None:
        return 404, {"error": "Install not found"}
    if CAP not in caps:
        return 403, {"success": False, "error": f"Permission denied: {CAP} not granted"}
    try:
        return 201, {"success": True, "invoice": create(db, tenant, install, validate(body))}
    except Refused as e:
        return 400, e.body


def _install_capabilities(db: sqlite_utils.Database, tenant: str, install: str) -> set[str] | None:
    row = first(db, "SELECT i.granted_caps, v.capabilities FROM tenant_extension_install i "
                    "JOIN extension_version v ON v.id = i.version_id WHERE i.id = ? AND i.tenant_id = ?",
                [install, tenant])
    if row is None:
        return None
    return {str(c).strip().lower() for column in ("granted_caps", "capabilities")
            for c in json.loads(row[column] or "[]")}


# -- validation (the server's invoicing validation) -----------------------------------------

def validate(raw: Any) -> Order:
    """The order in ``raw``, or Refused with every field error (the first per field)."""
    errors: dict[str, str] = {}

    def bad(where: str, message: str) -> None:
        errors.setdefault(where, message)

    if not isinstance(raw, dict):
        raise Refused("Invalid request body", {"body": "must be a JSON object"})
    client_id = _uuid(raw.get("clientId"), "clientId", bad)
    items = _items(raw.get("items"), bad)
    dates = [_date(raw.get(key), key, bad) for key in ("invoiceDate", "dueDate")]
    po_number = None if raw.get("poNumber") is None else (_text(raw["poNumber"]) or None)
    if po_number is not None and len(po_number) > 128:
        bad("poNumber", "must be at most 128 characters")
    if errors or not client_id:
        raise Refused("Validation error", errors)
    return Order(client_id, items, *dates, po_number)


def _text(value: Any) -> str | None:
    """JavaScript's ``String(value).trim()``, None for null/absent."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def _number(value: Any) -> float:
    """JavaScript's ``Number(value)``: NaN for what it can not read."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if value is None:
        return 0.0
    if isinstance(value, str):
        try:
            return float(value.strip()) if value.strip() else 0.0
        except ValueError:
            return math.nan
    return math.nan


def _uuid(value: Any, where: str, bad) -> str | None:
    text = _text(value)
    if not text:
        bad(where, "is required")
        return None
    if not _UUID.fullmatch(text):
        bad(where, f"{text!r} is not a UUID")
        return None
    return text


def _date(value: Any, where: str, bad) -> str | None:
    text = _text(value)
    if not text:
        return None
    if not _DATE.fullmatch(text):
        bad(where, f"{text!r} is not a date YYYY-MM-DD")
        return None
    return text


def _items(raw: Any, bad) -> list[Item]:
    if not isinstance(raw, list) or not raw:
        bad("items", "must list at least one item")
        return []
    items = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            bad(f"items[{i}]", "must be an object")
            continue
        item = _item(entry, f"items[{i}]", bad)
        if item is not None:
            items.append(item)
    return items


def _item(raw: dict, at: str, bad) -> Item | None:
    service_id = _uuid(raw.get("serviceId"), f"{at}.serviceId", bad)
    description = _text(raw.get("description"))
    if not description:
        bad(f"{at}.description", "is required")
    elif len(description) > 500:
        bad(f"{at}.description", "must be at most 500 characters")
    quantity, rate = _number(raw.get("quantity", math.nan)), _number(raw.get("rate", math.nan))
    if not (math.isfinite(quantity) and quantity > 0):
        bad(f"{at}.quantity", "must be a number above 0")
    if not (math.isfinite(rate) and rate >= 0):
        bad(f"{at}.rate", "must be a number of at least 0")
    is_discount = bool(raw["isDiscount"]) if "isDiscount" in raw and raw["isDiscount"] is not None else False
    kind_raw = _text(raw.get("discountType"))
    kind = kind_raw if kind_raw in ("percentage", "fixed") else None
    targets = [raw.get("appliesToItemId"), raw.get("appliesToServiceId")]
    if is_discount:
        if kind is None:
            bad(f"{at}.discountType", "is required for a discount: percentage or fixed")
        if kind == "percentage" and math.isfinite(rate) and not 0 <= rate <= 100:
            bad(f"{at}.rate", "a percentage discount is between 0 and 100")
    else:
        if kind_raw:
            bad(f"{at}.discountType", "is only for discounts (isDiscount: true)")
        if any(t is not None for t in targets):
            bad(at, "appliesToItemId and appliesToServiceId are only for discounts (isDiscount: true)")
    item_target, service_target = (None if t is None else _uuid(t, f"{at}.{name}", bad)
                                   for t, name in zip(targets, ("appliesToItemId", "appliesToServiceId")))
    if item_target and service_target:
        bad(at, "give appliesToItemId or appliesToServiceId, not both")
    if not (service_id and description and math.isfinite(quantity) and quantity > 0
            and math.isfinite(rate) and rate >= 0):
        return None
    return Item(service_id, quantity, description, _round(rate), is_discount, kind, item_target, service_target)


def _round(value: float) -> int:
    """JavaScript's ``Math.round`` (halves up)."""
    return math.floor(value + 0.5)


# -- creation ----------------------------------------------------------------------------------

def create(db: sqlite_utils.Database, tenant: str, install: str, order: Order) -> dict[str, Any]:
    client = _seeded(db, "seed_client", "client_id", tenant, order.client_id)
    if client is None:
        raise Refused("Client not found", {"clientId": "Client not found"})
    services = {}
    for item in order.items:
        service = _seeded(db, "seed_service", "service_id", tenant, item.service_id)
        if service is None and not item.is_discount:
            raise Refused("Service not found", {"serviceId": "Service not found"})
        services[item.service_id] = service or {}
    subtotal = price(db, order.items)
    tax = 0 if client.get("isTaxExempt") is True else distribute_tax(order.items, services)
    invoice_date = order.invoice_date or datetime.now(timezone.utc).date().isoformat()
    invoice_id = str(uuid.uuid4())
    with transaction(db):
        number = _next_number(db, tenant)
        db.execute("INSERT INTO invoice (id, tenant_id, install_id, client_id, number, status, invoice_date, "
                   "due_date, po_number, subtotal, tax, total) VALUES (?, ?, ?, ?, ?, 'draft', ?, ?, ?, ?, ?, ?)",
                   [invoice_id, tenant, install, order.client_id, number, invoice_date,
                    order.due_date or invoice_date, order.po_number, subtotal, tax, subtotal + tax])
        for position, item in enumerate(order.items):
            db.execute("INSERT INTO invoice_charge (id, invoice_id, position, service_id, description, quantity, "
                       "unit_price, net_amount, tax_rate, tax_amount, is_discount, discount_type, "
                       "applies_to_item_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [item.id, invoice_id, position, item.service_id, item.description, item.quantity,
                        _unit_price(item), item.net, item.tax_rate, item.tax, int(item.is_discount),
                        item.discount_type, item.applies_to_item_id])
    return {"invoiceId": invoice_id, "invoiceNumber": number, "status": "draft", "subtotal": subtotal, "tax": tax,
            "total": subtotal + tax}


def _seeded(db: sqlite_utils.Database, table: str, column: str, tenant: str, item_id: str) -> dict | None:
    row = first(db, f"SELECT data FROM {table} WHERE tenant_id = ? AND {column} = ?", [tenant, item_id])
    return None if row is None else json.loads(row["data"])


def price(db: sqlite_utils.Database, items: list[Item]) -> int:
    """Each item's net amount (non-discount items first, as Alga prices them); the subtotal."""
    subtotal = 0
    by_service: dict[str, Item] = {}
    for item in (i for i in items if not i.is_discount):
        item.net = _round(item.quantity * item.rate)
        by_service.setdefault(item.service_id, item)
        subtotal += item.net
    for item in (i for i in items if i.is_discount):
        if item.applies_to_service_id and not item.applies_to_item_id:
            target = by_service.get(item.applies_to_service_id)
            if target is None:
                raise Refused(f"no invoice item for service {item.applies_to_service_id} to apply the discount to")
            item.applies_to_item_id = target.id
        if item.discount_type == "percentage":
            base = subtotal if not item.applies_to_item_id else _item_amount(db, items, item.applies_to_item_id)
            item.net = -_round(base * abs(item.rate) / 100)
        else:
            item.net = -abs(item.rate)
        subtotal += item.net
    return subtotal


def _item_amount(db: sqlite_utils.Database, items: list[Item], item_id: str) -> int:
    """The net amount of a charge of this invoice or an earlier one (0 when there is none)."""
    mine = next((i.net for i in items if i.id == item_id), None)
    if mine is not None:
        return mine
    row = first(db, "SELECT net_amount FROM invoice_charge WHERE id = ?", [item_id])
    return row["net_amount"] if row else 0


def distribute_tax(items: list[Item], services: dict[str, dict]) -> int:
    """Tax per rate over the positive taxable items, shared out by size; the invoice's total tax."""
    groups: dict[float, list[Item]] = {}
    for item in items:
        rate = services[item.service_id].get("taxRate")
        if not item.is_discount and item.net > 0 and isinstance(rate, (int, float)) and not isinstance(rate, bool):
            groups.setdefault(float(rate), []).append(item)
    total = 0
    for rate, group in groups.items():
        base = sum(i.net for i in group)
        tax = math.ceil(base * rate / 100) if base > 0 else 0
        left = tax
        ordered = sorted(group, key=lambda i: -i.net)
        for n, item in enumerate(ordered):
            item.tax_rate = rate
            item.tax = left if n == len(ordered) - 1 else math.floor(item.net / base * tax)
            left -= item.tax
        total += tax
    return total


def _unit_price(item: Item) -> int:
    if not item.is_discount:
        return item.rate
    return 0 if item.discount_type == "percentage" else -abs(item.rate)


def _next_number(db: sqlite_utils.Database, tenant: str) -> str:
    db.execute("INSERT INTO invoice_number (tenant_id, last_number) VALUES (?, 1) "
               "ON CONFLICT (tenant_id) DO UPDATE SET last_number = last_number + 1", [tenant])
    n = str(first(db, "SELECT last_number FROM invoice_number WHERE tenant_id = ?", [tenant])["last_number"])
    return NUMBER_PREFIX + (n.zfill(NUMBER_PADDING) if len(n) <= NUMBER_PADDING else n)


# -- reading (flask ext invoices) --------------------------------------------------------------

def list_invoices(db: sqlite_utils.Database, tenant: str) -> list[dict]:
    return list(db.query("SELECT id, number, status, client_id, invoice_date, due_date, po_number, subtotal, tax, "
                         "total, install_id, created_at FROM invoice WHERE tenant_id = ? "
                         "ORDER BY created_at, number", [tenant]))


def get_invoice(db: sqlite_utils.Database, tenant: str, ref: str) -> dict | None:
    """An invoice by id or number, with its charges."""
    invoice = first(db, "SELECT * FROM invoice WHERE tenant_id = ? AND (id = ? OR number = ?)", [tenant, ref, ref])
    if invoice is not None:
        invoice["charges"] = list(db.query(
            "SELECT id, service_id, description, quantity, unit_price, net_amount, tax_rate, tax_amount, "
            "is_discount, discount_type, applies_to_item_id FROM invoice_charge WHERE invoice_id = ? "
            "ORDER BY position", [invoice["id"]]))
    return invoice
