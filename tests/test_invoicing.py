"""Standalone manual invoices: invoicing.create-manual-invoice against the seeded clients and services,
called as a worker calls it (quick tier), and ``flask ext invoices list/show``."""
import json

import pytest
from helpers import call_context

from runner.worker.host import invoicing
from runner.worker.host.values import record
from settings import Settings
from standalone.manifest import validate
from storage.registry.catalogue import replace_seed
from storage.registry.db import open_db
from storage.registry.installs import Registry

CLIENT = "1f0c3a52-8f7e-4d21-9b3a-6c1d2e3f4a5b"
EXEMPT = "2a1b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
SUPPORT = "3b2c1d0e-9f8a-4b7c-8d6e-5f4a3b2c1d0e"  # taxRate 8.25
HOSTING = "4c3d2e1f-0a9b-4c8d-9e7f-6a5b4c3d2e1f"  # taxRate 20
ADVICE = "5d4e3f2a-1b0c-4d9e-8f7a-7b6c5d4e3f2a"  # no tax rate: not taxable
SEED_CLIENTS = [{"clientId": CLIENT, "clientName": "Acme"},
                {"clientId": EXEMPT, "clientName": "Charity", "isTaxExempt": True}]
SEED_SERVICES = [
    {"serviceId": SUPPORT, "serviceName": "Support", "itemKind": "service", "billingMethod": "hourly",
     "defaultRate": 9500, "taxRate": 8.25},
    {"serviceId": HOSTING, "serviceName": "Hosting", "itemKind": "service", "billingMethod": "fixed",
     "defaultRate": 4000, "taxRate": 20},
    {"serviceId": ADVICE, "serviceName": "Advice", "itemKind": "service", "billingMethod": "hourly",
     "defaultRate": 12000}]


@pytest.fixture
def settings(tmp_path):
    return Settings.from_env({}, registry_db=str(tmp_path / "r.db"))


@pytest.fixture
def installs(settings):
    return make_installs(settings)


def make_installs(settings) -> dict:
    """Two installs of the default tenant, one granted cap:invoice.manual.create and one not, and the seed."""
    registry = Registry(settings.registry.registry_db, settings.registry.default_tenant)
    tenant = settings.registry.default_tenant
    made = {}
    for name, caps in (("granted", [invoicing.CAP]), ("plain", [])):
        m = validate({"name": f"com.tests.{name}", "version": "1.0.0", "runtime": "wasm-js@1", "capabilities": caps})
        made[name] = registry.upsert(tenant, m, "sha256:" + "a" * 64, 1, "x", caps).install
    replace_seed(open_db(settings.registry.registry_db), tenant, SEED_CLIENTS, SEED_SERVICES)
    return made


def item(service, quantity, rate, description="Work", **extra):
    fields = dict(service_id=service, quantity=float(quantity), description=description, rate=float(rate),
                  is_discount=None, discount_type=None, applies_to_item_id=None, applies_to_service_id=None)
    return record(**{**fields, **extra})


def invoice_input(*items, client=CLIENT, **extra):
    fields = dict(client_id=client, items=list(items), invoice_date=None, due_date=None, po_number=None)
    return record(**{**fields, **extra})


def create(settings, install, invoice):
    ctx = call_context(settings, tenant=install.tenant_id, extension=install.registry_id, install=install.id,
                       grants={invoicing.CAP})
    result = invoicing.create_manual_invoice(ctx, invoice)
    return {k.replace("-", "_"): v for k, v in vars(result).items()}


def test_a_manual_invoice_is_numbered_priced_and_taxed(settings, installs):
    out = create(settings, installs["granted"], invoice_input(
        item(SUPPORT, 2, 9500), item(HOSTING, 1, 4000.4), item(ADVICE, 1, 12000),
        item(SUPPORT, 1, 10, "10% off support", is_discount=True, discount_type="percentage",
             applies_to_service_id=SUPPORT),
        item(ADVICE, 1, 500, "Goodwill", is_discount=True, discount_type="fixed"),
        invoice_date="2026-03-01", po_number=" PO-7 "))
    # 19000 + 4000 + 12000 = 35000; -1900 (10% of the support line) and -500: subtotal 32600.
    # Tax before discounts, per rate: ceil(19000 * 8.25%) = 1568, ceil(4000 * 20%) = 800; advice untaxed.
    assert out == {"success": True, "invoice_id": out["invoice_id"], "invoice_number": "INV-000001",
                   "status": "draft", "subtotal": 32600.0, "tax": 2368.0, "total": 34968.0, "error": None,
                   "field_errors": None}
    second = create(settings, installs["granted"], invoice_input(item(HOSTING, 3, 4000), client=EXEMPT))
    assert (second["invoice_number"], second["subtotal"], second["tax"]) == ("INV-000002", 12000.0, 0.0)


def test_percentage_discount_of_the_subtotal(settings, installs):
    out = create(settings, installs["granted"], invoice_input(
        item(ADVICE, 1, 10000), item(ADVICE, 1, 25, "quarter off", is_discount=True, discount_type="percentage")))
    assert (out["subtotal"], out["tax"], out["total"]) == (7500.0, 0.0, 7500.0)


@pytest.mark.parametrize("invoice, errors", [
    (invoice_input(item(SUPPORT, 1, 100), client="c-1"), {"clientId"}),
    (invoice_input(client=""), {"clientId", "items"}),
    (invoice_input(item("s-1", 0, -1, " ")), {"items[0].serviceId", "items[0].description", "items[0].quantity",
                                               "items[0].rate"}),
    (invoice_input(item(SUPPORT, 1, 150, is_discount=True, discount_type="percentage")), {"items[0].rate"}),
    (invoice_input(item(SUPPORT, 1, 1, is_discount=True)), {"items[0].discountType"}),
    (invoice_input(item(SUPPORT, 1, 1, discount_type="fixed", applies_to_item_id=CLIENT)),
     {"items[0].discountType", "items[0]"}),
    (invoice_input(item(SUPPORT, 1, 1, is_discount=True, discount_type="fixed", applies_to_item_id=CLIENT,
                        applies_to_service_id=SUPPORT)), {"items[0]"}),
    (invoice_input(item(SUPPORT, 1, 1), invoice_date="01/03/2026", po_number="x" * 129), {"invoiceDate", "poNumber"}),
    (invoice_input(item(SUPPORT, 1, 1, "d" * 501)), {"items[0].description"}),
])
def test_bad_input_names_each_field(settings, installs, invoice, errors):
    out = create(settings, installs["granted"], invoice)
    assert (out["success"], out["error"]) == (False, "Validation error")
    assert set(json.loads(out["field_errors"])) == errors


def test_unknown_client_service_and_discount_target(settings, installs):
    other = "6e5f4a3b-2c1d-4e0f-9a8b-8c7d6e5f4a3b"
    out = create(settings, installs["granted"], invoice_input(item(SUPPORT, 1, 1), client=other))
    assert (out["error"], json.loads(out["field_errors"])) == ("Client not found", {"clientId": "Client not found"})
    out = create(settings, installs["granted"], invoice_input(item(other, 1, 1)))
    assert (out["error"], json.loads(out["field_errors"])) == ("Service not found", {"serviceId": "Service not found"})
    out = create(settings, installs["granted"], invoice_input(
        item(SUPPORT, 1, 100), item(SUPPORT, 1, 5, is_discount=True, discount_type="fixed",
                                    applies_to_service_id=HOSTING)))
    assert out["success"] is False and HOSTING in out["error"]


def test_the_install_must_hold_the_capability(settings, installs):
    out = create(settings, installs["plain"], invoice_input(item(SUPPORT, 1, 1)))
    assert (out["success"], out["error"]) == (False, f"Permission denied: {invoicing.CAP} not granted")


def test_invoices_commands(make_app, tmp_path):
    app = make_app(registry_db=str(tmp_path / "cli.db"))
    s = Settings.from_env({}, registry_db=str(tmp_path / "cli.db"))
    install = make_installs(s)["granted"]
    created = create(s, install, invoice_input(item(SUPPORT, 2, 9500), po_number="PO-9"))
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["ext", "invoices", "list"])
    assert listed.exit_code == 0 and "INV-000001  draft" in listed.output and "total 20568" in listed.output
    shown = json.loads(runner.invoke(args=["ext", "invoices", "show", "INV-000001", "--json"]).output)
    assert (shown["id"], shown["po_number"], shown["total"]) == (created["invoice_id"], "PO-9", 20568)
    assert [(c["net_amount"], c["tax_amount"]) for c in shown["charges"]] == [(19000, 1568)]
    text = runner.invoke(args=["ext", "invoices", "show", created["invoice_id"]]).output
    assert "2 x 9500  Work: net 19000  tax 1568 at 8.25%" in text
    missing = runner.invoke(args=["ext", "invoices", "show", "INV-9"])
    assert missing.exit_code == 1 and "no invoice 'INV-9'" in missing.output
