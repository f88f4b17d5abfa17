"""Installing an extension folder in one step (what the seed guide's twelve manual steps do).

Pack, upload to the bundle store at the reference key, upsert the registry rows
with the dev install script's ids, grant the manifest's capabilities, and warm
the component so the first request is fast. Shared by ``flask ext install``,
``flask ext dev`` and the sample install of ``make run``.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlencode

from runner.executor import Executor
from runner.policy.capabilities import known_only
from standalone.manifest import resolve_version
from standalone.packing import pack
from storage.bundles.stores import BundleStore, bundle_key
from storage.registry.installs import Install, Registry, RegistryError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLES = (PROJECT_ROOT / "samples" / "hello-world", PROJECT_ROOT / "samples" / "sdk-handler")


class BuildError(Exception):
    """The extension's own build failed or could not start."""


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


class Installer:
    """:param store_base: BUNDLE_STORE_BASE, for the bundle rows' storage_url.
    :param executor: warms components after install (None: skip). :param progress: receives step texts."""

    def __init__(self, registry: Registry, store: BundleStore, store_base: str, executor: Executor | None,
                 default_tenant: str, public_base: str, progress: Callable[[str], None] = lambda text: None):
        self.registry = registry
        self.store = store
        self.store_base = store_base
        self.executor = executor
        self.default_tenant = default_tenant
        self.public_base = public_base
        self.progress = progress

    def install(self, folder: str | Path, tenant: str | None = None, warm: bool = True) -> InstallResult:
        tenant = tenant or self.default_tenant
        if self.registry.tenant(tenant) is None:
            raise RegistryError(f"unknown tenant {tenant!r}; create it with: flask ext tenants create {tenant}")
        with tempfile.TemporaryDirectory(prefix="ext-install-") as tmp:
            self.progress(f"packing {folder} ...")
            packed = pack(folder, Path(tmp) / "bundle.tar.zst")
            m = packed.manifest
            registry_id = self.registry.registry_id(m.publisher, m.name)
            if m.wildcard_version:
                m = dataclasses.replace(m, version=self._free_version(registry_id, m.version, packed.content_hash))
            key = bundle_key(tenant, registry_id, packed.hex)
            self.progress(f"uploading {packed.size / 1e6:.1f} MB to {self.store.describe()} ...")
            self.store.put(key, packed.path)
        upserted = self.registry.upsert(tenant, m, packed.content_hash, packed.size,
                                        f"{self.store_base.rstrip('/')}/{key}", sorted(known_only(m.capabilities)))
        warnings = list(m.warnings)
        if warm and self.executor is not None and packed.has_component:
            warnings += self._warm(tenant, registry_id, packed.hex)
        install = upserted.install
        return InstallResult(install, upserted.changed, packed.size, ui_url(self.public_base, install),
                             api_base(self.public_base, install), warnings)

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
        self.progress(f"version {wildcard} is {resolved}")
        return resolved

    def _warm(self, tenant: str, registry_id: str, hex_hash: str) -> list[str]:
        started = time.monotonic()
        self.progress("preparing the component (it compiles once per bundle) ...")
        try:
            self.executor.warm(tenant, registry_id, hex_hash)
            self.progress(f"ready in {time.monotonic() - started:.1f} s")
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


def has_build(folder: str | Path) -> bool:
    """The folder's package.json has a build script."""
    try:
        scripts = json.loads((Path(folder) / "package.json").read_text(encoding="utf-8")).get("scripts") or {}
    except (OSError, ValueError, AttributeError):
        return False
    return "build" in scripts


def build(folder: str | Path) -> bool:
    """Run ``npm run build`` when the folder's package.json has a build script; False when it has none."""
    if not has_build(folder):
        return False
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError("package.json has a build script but npm is not installed; install Node.js")
    if subprocess.run([npm, "run", "build"], cwd=folder).returncode != 0:
        raise BuildError("npm run build failed (see its output above); fix it and save again")
    return True
