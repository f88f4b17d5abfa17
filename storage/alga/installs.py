"""The Alga server's install API (attached mode): install validation and per-install host lookups
for /ext-ui (reference §3.1, §1.3)."""
from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit, urlunsplit

import requests

from storage.alga.settings import AlgaSettings

log = logging.getLogger(__name__)

VALIDATE_TIMEOUT_S = 0.75
LOOKUP_TIMEOUT_S = 5.0


class InstallLookupFailed(Exception):
    """The registry could not be asked or gave an unreadable answer."""


class AlgaInstalls:
    """``/api/installs/*`` of the Alga server: the base URL's path is replaced, ``x-api-key`` sent."""

    def __init__(self, settings: AlgaSettings):
        self.base = settings.registry_base_url.strip()
        self.auth_key = settings.alga_auth_key
        self.session = requests.Session()

    @property
    def configured(self) -> bool:
        parts = urlsplit(self.base)
        return parts.scheme in ("http", "https") and bool(parts.netloc)

    def _get(self, path: str, params: dict, timeout: float) -> requests.Response:
        parts = urlsplit(self.base)
        url = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        params = {**params, "ts": str(int(time.time() * 1000))}
        return self.session.get(url, params=params, headers={"x-api-key": self.auth_key}, timeout=timeout)

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
            raise InstallLookupFailed(str(e)) from e
        if not 200 <= r.status_code < 300:
            return None
        try:
            body = r.json()
        except ValueError as e:
            raise InstallLookupFailed("unreadable lookup answer") from e
        fields = ("tenant_id", "extension_id", "content_hash")
        if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in fields):
            raise InstallLookupFailed("lookup answer lacks tenant_id, extension_id or content_hash")
        return {k: body[k] for k in fields}


def host_without_port(host: str) -> str:
    host = host.strip()
    if host.startswith("["):  # [::1]:8080
        return host[: host.find("]") + 1] if "]" in host else host
    return host.split(":", 1)[0]
