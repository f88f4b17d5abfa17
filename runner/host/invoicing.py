"""alga:extension/invoicing (frame): the reference's answers when no Alga server is configured."""
from __future__ import annotations

from runner.host.call import CallContext
from runner.host.values import record

CAP = "cap:invoice.manual.create"


def create_manual_invoice(ctx: CallContext, invoice):
    if not ctx.allows(CAP):
        error = f"Permission denied: {CAP} not granted"
    elif not ctx.install_id:
        error = "Permission denied: install_id missing"
    else:
        error = "invoicing base URL not configured"
    return record(success=False, invoice_id=None, invoice_number=None, status=None, subtotal=None,
                  tax=None, total=None, error=error, field_errors=None)


INTERFACES = {"alga:extension/invoicing": {"create-manual-invoice": create_manual_invoice}}
