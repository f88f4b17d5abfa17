-- The reference's registry tables (ee/server/migrations, final column sets) in SQLite types.
-- JSON columns hold JSON text. Never edit an applied migration: add a new file.
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE extension_registry (
    id TEXT PRIMARY KEY,
    publisher TEXT NOT NULL,
    name TEXT NOT NULL,
    display_name TEXT,
    description TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (publisher, name)
);

CREATE TABLE extension_version (
    id TEXT PRIMARY KEY,
    registry_id TEXT NOT NULL REFERENCES extension_registry(id) ON DELETE CASCADE,
    version TEXT NOT NULL,
    runtime TEXT NOT NULL,
    main_entry TEXT NOT NULL,
    api TEXT NOT NULL DEFAULT '{}',
    ui TEXT,
    capabilities TEXT NOT NULL DEFAULT '[]',
    api_endpoints TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (registry_id, version)
);

CREATE TABLE extension_bundle (
    id TEXT PRIMARY KEY,
    version_id TEXT NOT NULL REFERENCES extension_version(id) ON DELETE CASCADE,
    content_hash TEXT NOT NULL,
    signature TEXT,
    precompiled TEXT,
    storage_url TEXT,
    size_bytes INTEGER,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (version_id, content_hash)
);

CREATE TABLE tenant_extension_install (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    registry_id TEXT NOT NULL REFERENCES extension_registry(id) ON DELETE CASCADE,
    version_id TEXT NOT NULL REFERENCES extension_version(id),
    granted_caps TEXT NOT NULL DEFAULT '[]',
    config TEXT NOT NULL DEFAULT '{}',
    is_enabled INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL DEFAULT 'enabled' CHECK (status IN ('enabled', 'disabled', 'pending')),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    runner_domain TEXT UNIQUE,
    runner_status TEXT NOT NULL DEFAULT '{"state":"pending"}',
    runner_ref TEXT,
    UNIQUE (tenant_id, registry_id)
);

CREATE TABLE tenant_extension_install_config (
    install_id TEXT NOT NULL UNIQUE REFERENCES tenant_extension_install(id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL,
    config TEXT NOT NULL DEFAULT '{}',
    providers TEXT NOT NULL DEFAULT '[]',
    version TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE tenant_extension_install_secrets (
    install_id TEXT NOT NULL UNIQUE REFERENCES tenant_extension_install(id) ON DELETE CASCADE,
    tenant_id TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    algorithm TEXT NOT NULL DEFAULT 'inline/base64',
    transit_key TEXT,
    transit_mount TEXT,
    version TEXT,
    expires_at TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
