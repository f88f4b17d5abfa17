"""Opening secret envelopes before a call (reference §4.3): inline base64 JSON or Vault transit.

Opened maps are cached (bounded, TTL 30 s or until ``expires_at``) under a key
that includes a digest of the ciphertext, so a changed envelope is reopened.
Secret values never appear in errors or logs: errors name the step only.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
from datetime import datetime, timezone

import requests

from runner.contract import SecretEnvelope
from runner.settings import RunnerSettings
from service.caches import ExpiringCache

TTL_SECONDS = 30.0
VAULT_TIMEOUT_S = 10
# Mount and key path come from the request and are pasted into the Vault URL: plain segments only,
# so they cannot climb out of ``{mount}/decrypt/`` or add a query.
_VAULT_PATH = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


class SecretDecryptError(Exception):
    """Names the failing step (e.g. ``secret_envelope.json_parse_failed``), never a value."""


class EnvelopeOpener:
    def __init__(self, settings: RunnerSettings, session: requests.Session | None = None):
        self.settings = settings
        self.cache = ExpiringCache(settings.secret_cache_max_entries, TTL_SECONDS)
        self.http = session or requests.Session()

    def open(self, env: SecretEnvelope, tenant: str, extension: str, install: str | None) -> dict[str, str]:
        if not env.ciphertext_b64.strip():
            return {}
        digest = hashlib.sha256(env.ciphertext_b64.encode()).hexdigest()
        key = f"{tenant}:{extension}:{install or ''}:{env.version or 'none'}:{digest}"
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        algorithm = (env.algorithm or "").strip().lower()
        if algorithm.startswith("vault-transit"):
            secrets = _json_map(_b64(self._vault_decrypt(env), "vault_transit.plaintext_decode_failed"),
                                "vault_transit.json_parse_failed")
        else:
            secrets = _json_map(_b64(env.ciphertext_b64, "secret_envelope.base64_decode_failed"),
                                "secret_envelope.json_parse_failed")
        self.cache.set(key, secrets, _ttl(env.expires_at))
        return secrets

    def _vault_decrypt(self, env: SecretEnvelope) -> str:
        s = self.settings
        if not s.vault_addr:
            raise SecretDecryptError("vault_transit.address_missing")
        if not env.key_path:
            raise SecretDecryptError("vault_transit.key_path_missing")
        key_path = env.key_path.strip("/")
        if not _plain_path(key_path):
            raise SecretDecryptError("vault_transit.invalid_key_path")
        mount = (env.mount or s.vault_transit_mount or "transit").strip("/")
        if not _plain_path(mount):
            raise SecretDecryptError("vault_transit.invalid_mount")
        try:
            with open(s.vault_token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError:
            token = ""
        if not token:
            raise SecretDecryptError("vault_transit.token_missing")
        headers = {"X-Vault-Token": token}
        if s.vault_namespace:
            headers["X-Vault-Namespace"] = s.vault_namespace
        url = f"{s.vault_addr.rstrip('/')}/v1/{mount}/decrypt/{key_path}"
        try:
            response = self.http.post(url, json={"ciphertext": env.ciphertext_b64}, headers=headers,
                                      timeout=VAULT_TIMEOUT_S)
        except requests.RequestException as e:
            raise SecretDecryptError(f"vault_transit.request_failed: {type(e).__name__}") from None
        if response.status_code // 100 != 2:
            raise SecretDecryptError(f"vault_transit.http_{response.status_code}")
        try:
            plaintext = response.json()["data"]["plaintext"]
        except (ValueError, KeyError, TypeError):
            raise SecretDecryptError("vault_transit.response_invalid") from None
        if not isinstance(plaintext, str):
            raise SecretDecryptError("vault_transit.response_invalid")
        return plaintext


def _plain_path(path: str) -> bool:
    return bool(_VAULT_PATH.fullmatch(path)) and not any(part in (".", "..") for part in path.split("/"))


def _b64(text: str, step: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SecretDecryptError(step) from None


def _json_map(data: bytes, step: str) -> dict[str, str]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise SecretDecryptError(step) from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise SecretDecryptError(step)
    return value


def _ttl(expires_at: str | None) -> float:
    if not expires_at:
        return TTL_SECONDS
    try:
        when = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    except ValueError:
        return TTL_SECONDS
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    left = when.timestamp() - time.time()
    return min(TTL_SECONDS, left) if left > 0 else TTL_SECONDS
