-- Manual invoices (alga:extension/invoicing, standalone mode): numbered per tenant, amounts in minor units.
CREATE TABLE invoice (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    install_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    number TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'draft',
    invoice_date TEXT NOT NULL,
    due_date TEXT NOT NULL,
    po_number TEXT,
    subtotal INTEGER NOT NULL,
    tax INTEGER NOT NULL,
    total INTEGER NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (tenant_id, number)
);
CREATE INDEX invoice_tenant ON invoice (tenant_id, created_at);

CREATE TABLE invoice_charge (
    id TEXT PRIMARY KEY,
    invoice_id TEXT NOT NULL REFERENCES invoice (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    service_id TEXT,
    description TEXT NOT NULL,
    quantity REAL NOT NULL,
    unit_price INTEGER NOT NULL,
    net_amount INTEGER NOT NULL,
    tax_rate REAL NOT NULL DEFAULT 0,
    tax_amount INTEGER NOT NULL DEFAULT 0,
    is_discount INTEGER NOT NULL DEFAULT 0,
    discount_type TEXT,
    applies_to_item_id TEXT
);
CREATE INDEX invoice_charge_invoice ON invoice_charge (invoice_id, position);

-- The last number given per tenant (Alga's next_number row for INVOICE).
CREATE TABLE invoice_number (
    tenant_id TEXT PRIMARY KEY,
    last_number INTEGER NOT NULL
);
