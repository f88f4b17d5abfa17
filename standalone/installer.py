"""Installing an extension folder in one step (what the seed guide's twelve manual steps do).

Pack, upload to the bundle store at the reference key, upsert the registry rows
with the dev install script's ids, grant the manifest's capabilities, and warm
the component so the first request is fast. Shared by ``flask ext install``,
``flask ext dev``, the sample install of ``make run`` and, split in its publish and
install halves, by the publish API Alga's CLI talks to (standalone/publish.py).
"""
from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from runner.executor import Executor
from runner.policy.capabilities import known_only
from service.progress import QUIET, Progress
from standalone.manifest import Manifest, resolve_version
from standalone.packing import pack
from storage.bundles.signing import MAX_SIGNATURE_BYTES, PrivateKey, put_signature, signature_key
from storage.bundles.stores import BundleNotFound, BundleStore, bundle_key
from storage.registry.installs import Install, Published, PublishedVersion, Registry, RegistryError, Upserted

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLES = (PROJECT_ROOT / "samples" / "hello-world", PROJECT_ROOT / "samples" / "sdk-handler")


@dataclass
class InstallResult:
    install: Install
    changed: tuple[str, ...]
    size: int
    ui_url: str | None
    api_base: str
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        i = self.install
        return {"name": i.name, "publisher": i.publisher, "version": i.version, "tenant": i.tenant_id,
                "registry_id": i.registry_id, "version_id": i.version_id, "install_id": i.id,
                "content_hash": i.content_hash, "size_bytes": self.size, "ui_url": self.ui_url,
                "api_base": self.api_base, "changed": list(self.changed), "warnings": self.warnings}


@dataclass(frozen=True)
class PublishResult:
    published: Published
    key: str  # where the archive is in the bundle store


class Installer:
    """:param store_base: BUNDLE_STORE_BASE, for the bundle rows' storage_url.
    :param executor: warms components after install (None: skip). :param progress: shows the long steps.
    :param max_archive_bytes: EXT_MAX_ARCHIVE_BYTES, for copying a bundle to another tenant's key.
    :param signing_key: signs every bundle it stores (EXT_SIGNING_KEY_FILE) when given."""

    def __init__(self, registry: Registry, store: BundleStore, store_base: str, executor: Executor | None,
                 default_tenant: str, public_base: str, progress: Progress = QUIET,
                 max_archive_bytes: int = 1 << 28, signing_key: PrivateKey | None = None):
        self.registry = registry
        self.store = store
        self.store_base = store_base
        self.executor = executor
        self.default_tenant = default_tenant
        self.public_base = public_base
        self.progress = progress
        self.max_archive_bytes = max_archive_bytes
        self.signing_key = signing_key

    def install(self, folder: str | Path, tenant: str | None = None, warm: bool = True) -> InstallResult:
        tenant = self._tenant(tenant)
        with tempfile.TemporaryDirectory(prefix="ext-install-") as tmp:
            with self.progress.step(f"packing {folder}"):
                packed = pack(folder, Path(tmp) / "bundle.tar.zst")
            m = packed.manifest
            registry_id = self.registry.registry_id(m.publisher, m.name)
            if m.wildcard_version:
                m = dataclasses.replace(m, version=self._free_version(registry_id, m.version, packed.content_hash))
            key = bundle_key(tenant, registry_id, packed.hex)
            self._upload(key, packed.path, packed.size, packed.hex)
        upserted = self.registry.upsert(tenant, m, packed.content_hash, packed.size, self._url(key),
                                        sorted(known_only(m.capabilities)))
        return self._installed(upserted, packed.size, list(m.warnings), warm and packed.has_component)

    def publish(self, archive: Path, hex_hash: str, size: int, manifest: Manifest,
                tenant: str | None = None) -> PublishResult:
        """Register an already packed archive as a new version (installed nowhere yet).

        Raises storage.registry.installs.VersionExists when that version is published already.
        """
        tenant = self._tenant(tenant)
        registry_id = self.registry.registry_id(manifest.publisher, manifest.name)
        if manifest.wildcard_version:  # finalize takes the next free patch number, as Alga's does
            resolved = resolve_version(manifest.version, list(self.registry.versions(registry_id)))
            manifest = dataclasses.replace(manifest, version=resolved)
        key = bundle_key(tenant, registry_id, hex_hash)
        self._upload(key, archive, size, hex_hash)
        return PublishResult(self.registry.publish(manifest, f"sha256:{hex_hash}", size, self._url(key)), key)

    def install_version(self, version: PublishedVersion, tenant: str | None = None,
                        warm: bool = True) -> InstallResult:
        """Install a published version for a tenant (or switch the tenant's install to it)."""
        tenant = self._tenant(tenant)
        bundles = self.registry.bundles(version.id)
        if not bundles:
            raise RegistryError(f"version {version.version} of {version.name} has no bundle; publish it again")
        bundle = bundles[0]
        hex_hash = bundle.content_hash.split(":", 1)[-1]
        key = bundle_key(tenant, version.registry_id, hex_hash)
        source = (bundle.storage_url or "").removeprefix(self.store_base.rstrip("/") + "/")
        if source != key:  # published under another tenant: the runner fetches by the caller's tenant
            self._copy(source, key, hex_hash)
        upserted = self.registry.install_version(tenant, version.registry_id, version.id,
                                                 sorted(known_only(version.capabilities)))
        return self._installed(upserted, bundle.size_bytes or 0, [], warm)

    def uninstall(self, ref: str, tenant: str | None = None, purge: bool = False) -> Install:
        tenant = tenant or self.default_tenant
        install = self.registry.find(tenant, ref)
        if install is None:
            raise RegistryError(f"no extension {ref!r} is installed for tenant {tenant}; see: flask ext list")
        self.registry.uninstall(install, purge)
        return install

    def _free_version(self, registry_id: str, wildcard: str, content_hash: str) -> str:
        """``X.Y.*``: the next free patch number, as Alga's finalize picks it; the same bytes
        installed again keep the version they got (finalize would make yet another one)."""
        versions = self.registry.versions(registry_id)
        same = [v for v, active in versions.items() if active == content_hash and v.startswith(wildcard[:-1])]
        resolved = same[0] if same else resolve_version(wildcard, list(versions))
        self.progress.note(f"version {wildcard} is {resolved}")
        return resolved

    def _tenant(self, tenant: str | None) -> str:
        tenant = tenant or self.default_tenant
        if self.registry.tenant(tenant) is None:
            raise RegistryError(f"unknown tenant {tenant!r}; create it with: flask ext tenants create {tenant}")
        return tenant

    def _url(self, key: str) -> str:
        return f"{self.store_base.rstrip('/')}/{key}"

    def _upload(self, key: str, path: Path, size: int, hex_hash: str) -> None:
        with self.progress.step(f"uploading {size / 1e6:.1f} MB to {self.store.describe()}"):
            self.store.put(key, path)
        self._sign(key, hex_hash)

    def _copy(self, source: str, key: str, hex_hash: str) -> None:
        with tempfile.TemporaryDirectory(prefix="ext-copy-") as tmp, \
                self.progress.step("copying the bundle to the tenant's key"):
            path = Path(tmp) / "bundle.tar.zst"
            with open(path, "wb") as f:
                self.store.fetch(source, f, self.max_archive_bytes)
            self.store.put(key, path)
            if self.signing_key is None:  # a signature over the content hash holds at any key: take it along
                with open(path, "wb") as f:
                    try:
                        self.store.fetch(signature_key(source), f, MAX_SIGNATURE_BYTES)
                    except BundleNotFound:
                        return
                self.store.put(signature_key(key), path)
        self._sign(key, hex_hash)

    def _sign(self, key: str, hex_hash: str) -> None:
        """With EXT_SIGNING_KEY_FILE: the signature beside the archive, for SIGNING_TRUST_BUNDLE."""
        if self.signing_key is not None:
            with self.progress.step("signing the bundle"):
                put_signature(self.store, key, hex_hash, self.signing_key)

    def _installed(self, upserted: Upserted, size: int, warnings: list[str], warm: bool) -> InstallResult:
        install = upserted.install
        if warm and self.executor is not None:
            warnings += self._warm(install)
        return InstallResult(install, upserted.changed, size, ui_url(self.public_base, install),
                             api_base(self.public_base, install), warnings)

    def _warm(self, install: Install) -> list[str]:
        try:
            self.executor.warm(install.tenant_id, install.registry_id, install.hash_hex, self.progress)
        except Exception as e:  # the install stands; the first request reports the same failure
            return [f"the component could not be prepared: {getattr(e, 'reason', None) or e}"]
        return []


def public_base(host: str, port: int) -> str:
    """Where a browser on this machine reaches the service."""
    host = host if host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def ui_url(base: str, install: Install) -> str | None:
    """The iframe URL the Alga host page builds (reference §3.5), or None for an extension without UI."""
    if install.ui is None or not install.hash_hex:
        return None
    query = urlencode({"tenant": install.tenant_id, "extensionId": install.registry_id})
    return f"{base}/ext-ui/{install.registry_id}/sha256%3A{install.hash_hex}/index.html?{query}"


def api_base(base: str, install: Install) -> str:
    return f"{base}/api/ext/{install.registry_id}"
