"""Which tenant a UI request is for, and whether that tenant may see the bundle (reference §3.1 steps 3-5).

``validate(tenant, extension, content_hash) -> bool`` and ``lookup_host(host) -> dict | None`` are
given by the caller: the Alga server's install API when attached (storage/alga/installs.py), the
standalone registry when not (no host lookups then).
"""
from __future__ import annotations

import logging
from typing import Callable

from service.caches import ExpiringCache
from storage.alga.installs import InstallLookupFailed

log = logging.getLogger(__name__)

VALIDATION_TTL_S = 45.0
HINT_TTL_S = 24 * 3600.0
MAX_ENTRIES = 10_000


class Tenancy:
    """:param lookup_host: None when no registry can map hosts to installs.
    :param default_tenant: the last resort (standalone mode); "" for none."""

    def __init__(self, strict: bool, validate: Callable[[str, str, str], bool],
                 lookup_host: Callable[[str], dict | None] | None, default_tenant: str = ""):
        self.strict = strict
        self._validate = validate
        self._lookup_host = lookup_host
        self.can_lookup = lookup_host is not None
        self.default_tenant = default_tenant
        self.hints = ExpiringCache(MAX_ENTRIES, HINT_TTL_S)
        self.validations = ExpiringCache(MAX_ENTRIES, VALIDATION_TTL_S)

    def resolve(self, query_tenant: str | None, header_tenant: str | None, extension_id: str, content_hash: str,
                hex_hash: str, host: str) -> str | None:
        """First non-empty of: ``tenant`` query, ``x-tenant-id``, hint for (extension, hash), host lookup,
        and in standalone mode EXT_DEFAULT_TENANT.

        In strict mode only a tenant that passes ``allowed()`` becomes the hint: a bad ``?tenant=``
        must not replace a good hint (tenant-less asset requests would then 404 for a day)."""
        tenant = (query_tenant or "").strip() or (header_tenant or "").strip()
        if not tenant:
            tenant = self.hints.get((extension_id, hex_hash))
            if tenant:
                return tenant
            tenant = self._tenant_by_host(host)
        if tenant and self.hints.get((extension_id, hex_hash)) != tenant and (
                not self.strict or self.allowed(tenant, extension_id, content_hash)):
            # set once, not refreshed on every asset request: a set costs ~5% of an /ext-ui answer
            self.hints.set((extension_id, hex_hash), tenant)
        return tenant or self.default_tenant or None

    def allowed(self, tenant: str, extension_id: str, content_hash: str) -> bool:
        """Strict-mode install check; answers (yes and no) are remembered for 45 s."""
        key = (tenant, extension_id, content_hash)
        cached = self.validations.get(key)
        if cached is None:
            try:
                cached = bool(self._validate(tenant, extension_id, content_hash))
            except Exception:
                log.exception("install validator failed", extra={"tenant": tenant, "extension": extension_id})
                cached = False
            self.validations.set(key, cached)
        return cached

    def _tenant_by_host(self, host: str) -> str | None:
        if self._lookup_host is None or not host:
            return None
        try:
            found = self._lookup_host(host)
        except InstallLookupFailed:
            return None
        return found["tenant_id"] if found else None
