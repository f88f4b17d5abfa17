"""Which tenant a UI request is for, and whether that tenant may see the bundle (reference §3.1 steps 3-5).

Install validation calls ``validate(tenant, extension, content_hash) -> bool``: by default the Alga
server over HTTP (attached mode); a standalone registry can pass its own. Host lookups always
ask the Alga server.
"""
from __future__ import annotations

import logging
import time
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

import requests

from bounded import BoundedCache

log = logging.getLogger(__name__)

VALIDATE_TIMEOUT_S = 0.75
LOOKUP_TIMEOUT_S = 5.0
VALIDATION_TTL_S = 45.0
HINT_TTL_S = 24 * 3600.0
MAX_ENTRIES = 10_000


class RegistryError(Exception):
    """The registry could not be asked or gave an unreadable answer."""


class HttpRegistry:
    """``/api/installs/*`` of the Alga server: the base URL's path is replaced, ``x-api-key`` sent."""

    def __init__(self, settings):
        self.settings = settings
        self.session = requests.Session()

    @property
    def configured(self) -> bool:
        parts = urlsplit(self.settings.registry_base_url.strip())
        return parts.scheme in ("http", "https") and bool(parts.netloc)

    def _get(self, path: str, params: dict, timeout: float) -> requests.Response:
        parts = urlsplit(self.settings.registry_base_url.strip())
        url = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        params = {**params, "ts": str(int(time.time() * 1000))}
        return self.session.get(url, params=params, headers={"x-api-key": self.settings.auth_key}, timeout=timeout)

    def validate(self, tenant: str, extension: str, content_hash: str) -> bool:
        if not self.configured:
            return False
        try:
            r = self._get("/api/installs/validate", {"tenant": tenant, "extension": extension, "hash": content_hash},
                          VALIDATE_TIMEOUT_S)
            return 200 <= r.status_code < 300 and r.json().get("valid") is True
        except (requests.RequestException, ValueError, AttributeError) as e:
            log.warning("install validation failed", extra={"tenant": tenant, "extension": extension,
                                                            "error": str(e)})
            return False

    def lookup_host(self, host: str) -> dict | None:
        """``{tenant_id, extension_id, content_hash}``; None when the registry knows no such host."""
        try:
            r = self._get("/api/installs/lookup-by-host", {"host": host}, LOOKUP_TIMEOUT_S)
        except requests.RequestException as e:
            raise RegistryError(str(e)) from e
        if not 200 <= r.status_code < 300:
            return None
        try:
            body = r.json()
        except ValueError as e:
            raise RegistryError("unreadable lookup answer") from e
        fields = ("tenant_id", "extension_id", "content_hash")
        if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in fields):
            raise RegistryError("lookup answer lacks tenant_id, extension_id or content_hash")
        return {k: body[k] for k in fields}


class Tenancy:
    def __init__(self, settings, validate: Callable[[str, str, str], bool] | None = None):
        http = HttpRegistry(settings)
        self.strict = settings.static_strict_validation
        self.can_lookup = http.configured
        self._validate = validate or http.validate
        self._lookup_host = http.lookup_host
        self.default_tenant = settings.default_tenant if settings.standalone else ""
        self.hints = BoundedCache(MAX_ENTRIES, HINT_TTL_S)
        self.validations = BoundedCache(MAX_ENTRIES, VALIDATION_TTL_S)

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
        if tenant and (not self.strict or self.allowed(tenant, extension_id, content_hash)):
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

    def lookup_host(self, host: str) -> dict | None:
        return self._lookup_host(host)

    def _tenant_by_host(self, host: str) -> str | None:
        if not self.can_lookup or not host:
            return None
        try:
            found = self._lookup_host(host)
        except RegistryError:
            return None
        return found["tenant_id"] if found else None


def host_without_port(host: str) -> str:
    host = host.strip()
    if host.startswith("["):  # [::1]:8080
        return host[: host.find("]") + 1] if "]" in host else host
    return host.split(":", 1)[0]
