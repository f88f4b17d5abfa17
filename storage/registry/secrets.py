"""Install secrets, encrypted at rest with a local Fernet key (standalone mode).

An install's secrets are one JSON object, encrypted as a whole into
``tenant_extension_install_secrets.ciphertext``. The key lives in
``EXT_SECRETS_KEY_FILE`` (created 0600 on first use). For a call, the map is
decrypted and handed to the executor as an ``inline/base64`` envelope, the
form the Alga server sends for unencrypted installs (reference §4.3).
"""
from __future__ import annotations

import base64
import json
import os
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from storage.registry.installs import Install, Registry

ALGORITHM = "fernet/local"  # how the row is encrypted at rest; the envelope sent is inline/base64


class SecretsError(Exception):
    """The secrets can not be read; the message says what to do."""


class SecretsStore:
    def __init__(self, registry: Registry, key_file: str | Path):
        self.registry = registry
        self.key_file = Path(key_file)
        self._fernet: Fernet | None = None

    def set(self, install: Install, key: str, value: str) -> None:
        if not key.strip():
            raise SecretsError("a secret needs a non-empty name")
        with self.registry.transaction():  # read-modify-write: a concurrent set must not be lost
            secrets = self.read(install)
            secrets[key] = value
            self._write(install, secrets)

    def remove(self, install: Install, key: str) -> bool:
        with self.registry.transaction():
            secrets = self.read(install)
            if key not in secrets:
                return False
            del secrets[key]
            self._write(install, secrets)
        return True

    def names(self, install: Install) -> list[str]:
        return sorted(self.read(install))

    def read(self, install: Install) -> dict[str, str]:
        ciphertext = self.registry.secret_ciphertext(install.id)
        if ciphertext is None:
            return {}
        try:
            return json.loads(self._key().decrypt(ciphertext.encode("ascii")))
        except InvalidToken:
            raise SecretsError(f"the secrets of {install.name} can not be decrypted with {self.key_file} "
                               "(was the key replaced?); set them again") from None

    def envelope(self, install: Install) -> dict | None:
        """The ``secret_envelope`` of an execute request, or None when the install has no secrets."""
        secrets = self.read(install)
        if not secrets:
            return None
        plaintext = json.dumps(secrets, separators=(",", ":")).encode("utf-8")
        return {"ciphertext_b64": base64.b64encode(plaintext).decode("ascii"), "algorithm": "inline/base64"}

    def _write(self, install: Install, secrets: dict[str, str]) -> None:
        ciphertext = None
        if secrets:
            ciphertext = self._key().encrypt(json.dumps(secrets).encode("utf-8")).decode("ascii")
        self.registry.write_secret_ciphertext(install, ciphertext, ALGORITHM)

    def _key(self) -> Fernet:
        if self._fernet is None:
            self._fernet = Fernet(self._load_or_create_key())
        return self._fernet

    def _load_or_create_key(self) -> bytes:
        try:
            return self.key_file.read_bytes().strip()
        except FileNotFoundError:
            pass
        self.key_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".secrets-key.", dir=self.key_file.parent)  # mkstemp files are 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key())
            try:
                os.link(tmp, self.key_file)  # atomic create-if-absent: another process may have won
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
        return self.key_file.read_bytes().strip()
