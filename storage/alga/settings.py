"""Settings of attached mode: the Alga server this runner works for."""
from __future__ import annotations

from dataclasses import dataclass

from service.config import setting


@dataclass(frozen=True)
class AlgaSettings:
    registry_base_url: str = setting("REGISTRY_BASE_URL", "", "Alga server origin; unset = standalone mode.")
    storage_api_base_url: str = setting("STORAGE_API_BASE_URL", "",
                                        "Base of /api/internal/ext-* calls (falls back to REGISTRY_BASE_URL).")
    storage_api_token: str = setting("RUNNER_STORAGE_API_TOKEN", "",
                                     "x-runner-auth for /api/internal/ext-* calls (falls back to RUNNER_SERVICE_TOKEN).")
    service_token: str = setting("RUNNER_SERVICE_TOKEN", "",
                                 "Fallback for RUNNER_STORAGE_API_TOKEN (as the reference: never checked inbound).",
                                 aliases=("RUNNER_AUTH_TOKEN",))
    alga_auth_key: str = setting("ALGA_AUTH_KEY", "", "x-api-key for /api/installs/* calls.")
    alga_auth_key_file: str = setting("ALGA_AUTH_KEY_FILE", "/vault/secrets/alga_auth_key",
                                      "File read when ALGA_AUTH_KEY is unset.")

    def __post_init__(self) -> None:
        if not self.alga_auth_key:  # read once here: the key is on the request path
            object.__setattr__(self, "alga_auth_key", _read_secret_file(self.alga_auth_key_file))

    @property
    def attached(self) -> bool:
        """The one mode predicate: an Alga server is configured (else the runner is standalone)."""
        return bool(self.internal_api_base or self.registry_base_url.strip())

    @property
    def internal_api_base(self) -> str:
        """Base of /api/internal/ext-* calls: trailing '/' and one trailing '/api' removed."""
        base = (self.storage_api_base_url or self.registry_base_url).strip().rstrip("/")
        return base[: -len("/api")] if base.endswith("/api") else base

    @property
    def internal_api_token(self) -> str:
        return self.storage_api_token or self.service_token


def _read_secret_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return ""
