-- Standalone scheduler (alga:extension/scheduler) and the seed catalogue (clients, services).
CREATE TABLE ext_schedule (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    install_id TEXT NOT NULL,
    endpoint_path TEXT NOT NULL,
    endpoint_method TEXT NOT NULL,
    name TEXT,
    cron TEXT NOT NULL,
    timezone TEXT NOT NULL DEFAULT 'UTC',
    enabled INTEGER NOT NULL DEFAULT 1,
    payload TEXT,
    next_run_at TEXT,
    last_run_at TEXT,
    last_run_status TEXT,
    last_error TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX ext_schedule_install ON ext_schedule (tenant_id, install_id);

CREATE TABLE seed_client (
    tenant_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (tenant_id, client_id)
);

CREATE TABLE seed_service (
    tenant_id TEXT NOT NULL,
    service_id TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (tenant_id, service_id)
);
