"""Settings of the SQLite registry (standalone mode)."""
from __future__ import annotations

from dataclasses import dataclass

from service.config import setting

DEV_TENANT = "51bbbfe5-0720-4d9b-b3e5-b5b43e441a52"  # the seed guide's DEV_TENANT_ID


@dataclass(frozen=True)
class RegistrySettings:
    registry_db: str = setting("EXT_REGISTRY_DB", "var/registry.db", "SQLite registry (standalone mode).")
    default_tenant: str = setting("EXT_DEFAULT_TENANT", DEV_TENANT,
                                  "Tenant used when a standalone request names none (the seed's DEV_TENANT_ID).")
    secrets_key_file: str = setting("EXT_SECRETS_KEY_FILE", "var/secrets.key",
                                    "Local key encrypting install secrets at rest (created when missing).")
