"""The standalone registry: the only SQL on the reference's extension tables (reference §7.4).

Reads return dataclasses. :class:`Install` is an install joined with its
extension, version, config and active bundle (the newest ``created_at`` bundle
of the version, as in Alga): what the gateway, the scheduler, ``/ext-ui``
validation and the host page work from. Writes and read-modify-writes run in
``transaction`` (``BEGIN IMMEDIATE``), so concurrent installs from several
processes serialise.
"""
from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Protocol

import sqlite_utils

from storage.registry.db import first, open_db, transaction

# The namespace and name keys of the reference's dev install script, so ids match it.
NAMESPACE = uuid.UUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
DEFAULT_TENANT_NAME = "Default"
MAIN_ENTRY = "dist/main.wasm"

_ACTIVE_BUNDLE = ("(SELECT b.content_hash FROM extension_bundle b WHERE b.version_id = i.version_id "
                  "ORDER BY b.created_at DESC, b.rowid DESC LIMIT 1)")
_INSTALLS = f"""
SELECT i.id, i.tenant_id, i.registry_id, i.version_id, i.granted_caps, i.is_enabled, i.status,
       i.created_at, i.updated_at, COALESCE(c.config, i.config) AS config, c.providers AS config_providers,
       r.publisher, r.name, r.display_name, r.description,
       v.version, v.runtime, v.ui, v.capabilities, v.api_endpoints, {_ACTIVE_BUNDLE} AS content_hash
FROM tenant_extension_install i
JOIN extension_registry r ON r.id = i.registry_id
JOIN extension_version v ON v.id = i.version_id
LEFT JOIN tenant_extension_install_config c ON c.install_id = i.id
"""
_MATCHES = ("(i.id = :ref OR i.registry_id = :ref OR lower(r.name) = lower(:ref) "
            "OR lower(r.publisher || '.' || r.name) = lower(:ref))")


class Release(Protocol):
    """What an install writes of a validated manifest (standalone/manifest.py's Manifest)."""

    name: str
    publisher: str
    version: str
    runtime: str
    capabilities: list[str]
    ui: dict | None
    api: dict

    def endpoint_dicts(self) -> list[dict[str, str]]: ...


class RegistryError(Exception):
    """A registry request that can not be met; the message says why."""


class VersionExists(RegistryError):
    """A publish of a version the extension has already."""


def deterministic_id(key: str) -> str:
    return str(uuid.uuid5(NAMESPACE, key))


def utc_now() -> str:
    """ISO-8601 UTC with microseconds: sorts as text, and two installs never share a bundle time."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    created_at: str


@dataclass(frozen=True)
class Bundle:
    id: str
    content_hash: str
    storage_url: str | None
    size_bytes: int | None
    created_at: str


@dataclass(frozen=True)
class Install:
    id: str
    tenant_id: str
    registry_id: str
    version_id: str
    publisher: str
    name: str
    display_name: str | None
    description: str | None
    version: str
    runtime: str
    ui: dict | None  # the manifest's ui object (type, entry, hooks)
    capabilities: list[str]  # the manifest's
    api_endpoints: list[dict]  # [{method, path, handler}]
    granted_caps: list[str]
    config: dict[str, str]
    config_providers: list[str]
    content_hash: str | None  # "sha256:<hex>" of the active bundle
    is_enabled: bool
    status: str
    created_at: str
    updated_at: str

    @property
    def enabled(self) -> bool:
        """Callable through the gateway: enabled flag set and status ``enabled`` (reference §7.5)."""
        return self.is_enabled and self.status == "enabled"

    @property
    def hash_hex(self) -> str | None:
        return self.content_hash.split(":", 1)[-1].lower() if self.content_hash else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "enabled": self.enabled}


@dataclass(frozen=True)
class Published:
    registry_id: str
    version_id: str
    version: str
    changed: tuple[str, ...]  # which of registry, version, bundle were written


@dataclass(frozen=True)
class PublishedVersion:
    id: str
    registry_id: str
    name: str
    version: str
    capabilities: list[str]  # the manifest's


@dataclass(frozen=True)
class Upserted:
    install: Install
    changed: tuple[str, ...]  # which of registry, version, bundle, install were written; () = nothing


class Registry:
    """:param path: the SQLite file (``EXT_REGISTRY_DB``). :param default_tenant: created as "Default"."""

    def __init__(self, path: str | Path, default_tenant: str):
        self.path = Path(path)
        self.default_tenant = default_tenant
        self._seeded = False

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection (opened and migrated on first use, so forks never share one)."""
        db = open_db(self.path)
        if not self._seeded:
            db.execute("INSERT OR IGNORE INTO tenants (id, name, created_at) VALUES (?, ?, ?)",
                       (self.default_tenant, DEFAULT_TENANT_NAME, utc_now()))
            self._seeded = True
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        with transaction(self.db) as db:
            yield db

    # tenants ---------------------------------------------------------------
    def tenants(self) -> list[Tenant]:
        rows = self.db.query("SELECT id, name, created_at FROM tenants ORDER BY created_at, id")
        return [Tenant(**row) for row in rows]

    def tenant(self, tenant_id: str) -> Tenant | None:
        rows = self.db.query("SELECT id, name, created_at FROM tenants WHERE id = ?", [tenant_id])
        return next((Tenant(**row) for row in rows), None)

    def create_tenant(self, tenant_id: str, name: str) -> Tenant:
        if not tenant_id.strip() or "/" in tenant_id:
            raise RegistryError(f"invalid tenant id {tenant_id!r}: use a non-empty id without '/'")
        if self.tenant(tenant_id) is not None:
            raise RegistryError(f"tenant {tenant_id} already exists")
        self.db.execute("INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)", (tenant_id, name, utc_now()))
        return self.tenant(tenant_id)

    # extensions and installs -------------------------------------------------
    def registry_id(self, publisher: str, name: str) -> str:
        """The id an extension has, or will get when first installed."""
        rows = self.db.query("SELECT id FROM extension_registry WHERE publisher = ? AND name = ?", [publisher, name])
        return next((row["id"] for row in rows), None) or deterministic_id(f"{publisher}/{name}")

    def versions(self, registry_id: str) -> dict[str, str | None]:
        """An extension's versions, each with its active bundle's content hash (None without one)."""
        rows = self.db.query("SELECT v.version, (SELECT b.content_hash FROM extension_bundle b WHERE "
                             "b.version_id = v.id ORDER BY b.created_at DESC, b.rowid DESC LIMIT 1) AS hash "
                             "FROM extension_version v WHERE v.registry_id = ?", [registry_id])
        return {row["version"]: row["hash"] for row in rows}

    def upsert(self, tenant: str, manifest: Release, content_hash: str, size_bytes: int, storage_url: str,
               granted_caps: list[str]) -> Upserted:
        """Publish and install in one transaction (``flask ext install``): registry, version, bundle and
        install rows, each written only when it differs from what is stored.

        A new content hash for an existing version becomes its newest (active) bundle at once.
        """
        with self.transaction() as db:
            if self.tenant(tenant) is None:
                raise RegistryError(f"unknown tenant {tenant!r}")
            published = self._publish(db, manifest, content_hash, size_bytes, storage_url, replace=True)
            install_id, changed = self._install(db, tenant, published.registry_id, published.version_id,
                                                granted_caps)
        return Upserted(self.install_by_id(install_id), published.changed + changed)

    def publish(self, manifest: Release, content_hash: str, size_bytes: int, storage_url: str) -> Published:
        """Register a new version with its bundle, installing it nowhere (Alga's finalize).

        Raises :class:`VersionExists` when the extension has that version already.
        """
        with self.transaction() as db:
            return self._publish(db, manifest, content_hash, size_bytes, storage_url, replace=False)

    def install_version(self, tenant: str, registry_id: str, version_id: str, granted_caps: list[str]) -> Upserted:
        """Install (or switch the tenant's install to) a published version."""
        with self.transaction() as db:
            if self.tenant(tenant) is None:
                raise RegistryError(f"unknown tenant {tenant!r}")
            install_id, changed = self._install(db, tenant, registry_id, version_id, granted_caps)
        return Upserted(self.install_by_id(install_id), changed)

    def version(self, registry_id: str, version: str) -> PublishedVersion | None:
        row = first(self.db, "SELECT v.id, v.version, v.capabilities, r.name FROM extension_version v "
                             "JOIN extension_registry r ON r.id = v.registry_id "
                             "WHERE v.registry_id = ? AND v.version = ?", [registry_id, version])
        return None if row is None else PublishedVersion(row["id"], registry_id, row["name"], row["version"],
                                                         json.loads(row["capabilities"]))

    def _publish(self, db: sqlite_utils.Database, m: Release, content_hash: str, size_bytes: int,
                 storage_url: str, replace: bool) -> Published:
        key = f"{m.publisher}/{m.name}"
        changed = []
        now = utc_now()
        registry_id = self.registry_id(m.publisher, m.name)
        if not _exists(db, "extension_registry", registry_id):
            db.execute("INSERT INTO extension_registry (id, publisher, name, display_name, description, "
                       "created_at, updated_at) VALUES (?, ?, ?, ?, '', ?, ?)",
                       (registry_id, m.publisher, m.name, m.name, now, now))
            changed.append("registry")

        fields = {"runtime": m.runtime, "main_entry": MAIN_ENTRY, "api": _json(m.api),
                  "ui": None if m.ui is None else _json(m.ui), "capabilities": _json(m.capabilities),
                  "api_endpoints": _json(m.endpoint_dicts())}
        stored = first(db, "SELECT * FROM extension_version WHERE registry_id = ? AND version = ?",
                       [registry_id, m.version])
        if stored is not None and not replace:
            raise VersionExists(f'Version "{m.version}" already exists for this extension. '
                                "Publish a new version and try again.")
        version_id = stored["id"] if stored else deterministic_id(f"{key}/{m.version}")
        if stored is None:
            db.execute("INSERT INTO extension_version (id, registry_id, version, runtime, main_entry, api, ui, "
                       "capabilities, api_endpoints, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (version_id, registry_id, m.version, *fields.values(), now))
            changed.append("version")
        elif any(stored[k] != v for k, v in fields.items()):
            db.execute(f"UPDATE extension_version SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                       (*fields.values(), version_id))
            changed.append("version")

        active = first(db, "SELECT content_hash FROM extension_bundle WHERE version_id = ? "
                           "ORDER BY created_at DESC, rowid DESC LIMIT 1", [version_id])
        if active is None or active["content_hash"] != content_hash:
            db.execute("INSERT INTO extension_bundle (id, version_id, content_hash, storage_url, size_bytes, "
                       "created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (version_id, content_hash) DO UPDATE "
                       "SET created_at = excluded.created_at, storage_url = excluded.storage_url, "
                       "size_bytes = excluded.size_bytes",
                       (deterministic_id(f"{key}/{m.version}/{content_hash}"), version_id, content_hash,
                        storage_url, size_bytes, now))
            changed.append("bundle")
        return Published(registry_id, version_id, m.version, tuple(changed))

    def _install(self, db: sqlite_utils.Database, tenant: str, registry_id: str, version_id: str,
                 granted_caps: list[str]) -> tuple[str, tuple[str, ...]]:
        """The install row of ``tenant`` for the version; returns its id and ``("install",)`` when written."""
        wanted = {"version_id": version_id, "granted_caps": _json(sorted(granted_caps)), "is_enabled": 1,
                  "status": "enabled", "runner_status": '{"state":"ready"}'}
        stored = first(db, "SELECT * FROM tenant_extension_install WHERE tenant_id = ? AND registry_id = ?",
                       [tenant, registry_id])
        if stored is None:
            reg = first(db, "SELECT publisher, name FROM extension_registry WHERE id = ?", [registry_id])
            install_id = deterministic_id(f"{tenant}/{reg['publisher']}/{reg['name']}")
            now = utc_now()
            db.execute("INSERT INTO tenant_extension_install (id, tenant_id, registry_id, version_id, "
                       "granted_caps, is_enabled, status, runner_status, created_at, updated_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (install_id, tenant, registry_id, *wanted.values(), now, now))
            return install_id, ("install",)
        if any(stored[k] != v for k, v in wanted.items()):
            self._update_install(db, stored["id"], wanted, utc_now())
            return stored["id"], ("install",)
        return stored["id"], ()

    def installs(self, tenant: str | None = None, enabled_only: bool = False) -> list[Install]:
        """A tenant's installs (every tenant's when ``tenant`` is None), by name."""
        where, params = [], {}
        if tenant is not None:
            where.append("i.tenant_id = :tenant")
            params["tenant"] = tenant
        if enabled_only:
            where.append("i.is_enabled = 1 AND i.status = 'enabled'")
        sql = _INSTALLS + (f"WHERE {' AND '.join(where)} " if where else "") + "ORDER BY r.name, i.tenant_id"
        return [_install(row) for row in self.db.query(sql, params)]

    def find(self, tenant: str, ref: str) -> Install | None:
        """The tenant's install of ``ref``: an install id, registry id, name or ``publisher.name``."""
        rows = list(self.db.query(_INSTALLS + f"WHERE i.tenant_id = :tenant AND {_MATCHES}",
                                  {"tenant": tenant, "ref": ref}))
        if len(rows) > 1:
            ids = ", ".join(f"{r['registry_id']} ({r['publisher']})" for r in rows)
            raise RegistryError(f"{ref!r} names several extensions: {ids}; use a registry id")
        return _install(rows[0]) if rows else None

    def install_by_id(self, install_id: str) -> Install | None:
        rows = self.db.query(_INSTALLS + "WHERE i.id = ?", [install_id])
        return next((_install(row) for row in rows), None)

    def bundles(self, version_id: str) -> list[Bundle]:
        """A version's bundles, newest (active) first."""
        rows = self.db.query("SELECT id, content_hash, storage_url, size_bytes, created_at FROM extension_bundle "
                             "WHERE version_id = ? ORDER BY created_at DESC, rowid DESC", [version_id])
        return [Bundle(**row) for row in rows]

    def set_enabled(self, install_id: str, enabled: bool) -> None:
        with self.transaction() as db:
            self._update_install(db, install_id, {"is_enabled": int(enabled),
                                                  "status": "enabled" if enabled else "disabled"}, utc_now())

    def update_config(self, install: Install, changes: dict[str, str], removed: tuple[str, ...] = ()) -> dict:
        """Set ``changes`` and drop ``removed`` keys of the install's config in one transaction (kept in
        ``tenant_extension_install_config``, as Alga reads it); returns the new config."""
        now = utc_now()
        with self.transaction() as db:
            current = self.install_by_id(install.id)
            if current is None:
                raise RegistryError(f"{install.name} is no longer installed for tenant {install.tenant_id}")
            config = {k: v for k, v in {**current.config, **changes}.items() if k not in removed}
            db.execute("INSERT INTO tenant_extension_install_config (install_id, tenant_id, config, created_at, "
                       "updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (install_id) DO UPDATE "
                       "SET config = excluded.config, updated_at = excluded.updated_at",
                       (install.id, install.tenant_id, _json(config), now, now))
        return config

    def uninstall(self, install: Install, purge: bool = False) -> None:
        """Remove the install (its config and secrets cascade). ``purge`` also removes its storage and
        schedules, and the extension's registry rows when no tenant has it installed any more."""
        with self.transaction() as db:
            db.execute("DELETE FROM tenant_extension_install WHERE id = ?", [install.id])
            if purge:
                for table in ("ext_storage", "ext_schedule"):
                    db.execute(f"DELETE FROM {table} WHERE tenant_id = ? AND install_id = ?",
                               [install.tenant_id, install.id])
                db.execute("DELETE FROM extension_registry WHERE id = ? AND NOT EXISTS "
                           "(SELECT 1 FROM tenant_extension_install WHERE registry_id = ?)",
                           [install.registry_id, install.registry_id])

    def validate_ui(self, tenant: str, extension_id: str, content_hash: str) -> bool:
        """/ext-ui strict validation: the tenant has an enabled install of registry id ``extension_id``
        whose active bundle is ``content_hash`` (``sha256:<hex>`` or bare hex)."""
        hex_hash = content_hash.strip().lower().removeprefix("sha256:")
        rows = self.db.query("SELECT 1 FROM tenant_extension_install i WHERE i.tenant_id = ? AND i.registry_id = ? "
                             f"AND i.is_enabled = 1 AND i.status = 'enabled' AND {_ACTIVE_BUNDLE} = ?",
                             [tenant, extension_id, f"sha256:{hex_hash}"])
        return any(True for _ in rows)

    # install secrets (ciphertext only: storage/registry/secrets.py encrypts) ---------
    def secret_ciphertext(self, install_id: str) -> str | None:
        row = first(self.db, "SELECT ciphertext FROM tenant_extension_install_secrets WHERE install_id = ?",
                    [install_id])
        return row["ciphertext"] if row else None

    def write_secret_ciphertext(self, install: Install, ciphertext: str | None, algorithm: str) -> None:
        """Store (or with ``None`` delete) the install's secrets row."""
        if ciphertext is None:
            self.db.execute("DELETE FROM tenant_extension_install_secrets WHERE install_id = ?", [install.id])
            return
        now = utc_now()
        self.db.execute("INSERT INTO tenant_extension_install_secrets (install_id, tenant_id, ciphertext, algorithm, "
                        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (install_id) DO UPDATE "
                        "SET ciphertext = excluded.ciphertext, algorithm = excluded.algorithm, "
                        "updated_at = excluded.updated_at",
                        (install.id, install.tenant_id, ciphertext, algorithm, now, now))

    @staticmethod
    def _update_install(db, install_id: str, values: dict, now: str) -> None:
        db.execute(f"UPDATE tenant_extension_install SET {', '.join(f'{k} = ?' for k in values)}, updated_at = ? "
                   "WHERE id = ?", (*values.values(), now, install_id))


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _exists(db: sqlite_utils.Database, table: str, row_id: str) -> bool:
    return first(db, f"SELECT 1 FROM {table} WHERE id = ?", [row_id]) is not None


def _install(row: dict) -> Install:
    config = json.loads(row["config"] or "{}")
    return Install(
        id=row["id"], tenant_id=row["tenant_id"], registry_id=row["registry_id"], version_id=row["version_id"],
        publisher=row["publisher"], name=row["name"], display_name=row["display_name"],
        description=row["description"], version=row["version"], runtime=row["runtime"],
        ui=json.loads(row["ui"]) if row["ui"] else None, capabilities=json.loads(row["capabilities"]),
        api_endpoints=json.loads(row["api_endpoints"]), granted_caps=json.loads(row["granted_caps"]),
        # Alga coerces config values to strings, JSON-encoding the others (reference §7.5).
        config={k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()},
        config_providers=json.loads(row["config_providers"] or "[]"), content_hash=row["content_hash"],
        is_enabled=bool(row["is_enabled"]), status=row["status"], created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
