"""Installing an extension folder in one step (what the seed guide's twelve manual steps do).

Pack, upload to the bundle store at the reference key, upsert the registry rows
with the dev install script's ids, grant the manifest's capabilities, and warm
the component so the first request is fast. Shared by ``flask ext install``,
``flask ext dev`` and the sample install of ``make run``.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlencode

from runner.capabilities import known_only
from storage.bundle_store import bundle_key
from storage.packing import pack, watched_files
from storage.registry import Install, Registry, RegistryError

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
    """:param executor: warms components after install (None: skip). :param progress: receives step texts."""

    def __init__(self, settings, registry: Registry, store, executor=None,
                 progress: Callable[[str], None] = lambda text: None):
        self.settings = settings
        self.registry = registry
        self.store = store
        self.executor = executor
        self.progress = progress

    def install(self, folder: str | Path, tenant: str | None = None, warm: bool = True) -> InstallResult:
        tenant = tenant or self.settings.default_tenant
        if self.registry.tenant(tenant) is None:
            raise RegistryError(f"unknown tenant {tenant!r}; create it with: flask ext tenants create {tenant}")
        with tempfile.TemporaryDirectory(prefix="ext-install-") as tmp:
            self.progress(f"packing {folder} ...")
            packed = pack(folder, Path(tmp) / "bundle.tar.zst")
            m = packed.manifest
            registry_id = self.registry.registry_id(m.publisher, m.name)
            key = bundle_key(tenant, registry_id, packed.hex)
            self.progress(f"uploading {packed.size / 1e6:.1f} MB to {self.store.describe()} ...")
            self.store.put(key, packed.path)
        upserted = self.registry.upsert(tenant, m, packed.content_hash, packed.size,
                                        f"{self.settings.bundle_store_base.rstrip('/')}/{key}",
                                        sorted(known_only(m.capabilities)))
        warnings = list(m.warnings)
        if warm and self.executor is not None and packed.has_component:
            warnings += self._warm(tenant, registry_id, packed.hex)
        install = upserted.install
        return InstallResult(install, upserted.changed, packed.size, ui_url(self.settings, install),
                             api_base(self.settings, install), warnings)

    def uninstall(self, ref: str, tenant: str | None = None, purge: bool = False) -> Install:
        tenant = tenant or self.settings.default_tenant
        install = self.registry.find(tenant, ref)
        if install is None:
            raise RegistryError(f"no extension {ref!r} is installed for tenant {tenant}; see: flask ext list")
        self.registry.uninstall(install, purge)
        return install

    def _warm(self, tenant: str, registry_id: str, hex_hash: str) -> list[str]:
        started = time.monotonic()
        self.progress("preparing the component (it compiles once per bundle) ...")
        try:
            self.executor.warm(tenant, registry_id, hex_hash)
            self.progress(f"ready in {time.monotonic() - started:.1f} s")
        except Exception as e:  # the install stands; the first request reports the same failure
            return [f"the component could not be prepared: {getattr(e, 'reason', None) or e}"]
        return []


def public_base(settings) -> str:
    host = settings.host if settings.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.port}"


def ui_url(settings, install: Install) -> str | None:
    """The iframe URL the Alga host page builds (reference §3.5), or None for an extension without UI."""
    if install.ui is None or not install.hash_hex:
        return None
    query = urlencode({"tenant": install.tenant_id, "extensionId": install.registry_id})
    return f"{public_base(settings)}/ext-ui/{install.registry_id}/sha256%3A{install.hash_hex}/index.html?{query}"


def api_base(settings, install: Install) -> str:
    return f"{public_base(settings)}/api/ext/{install.registry_id}"


def build(folder: str | Path) -> bool:
    """Run ``npm run build`` when the folder's package.json has a build script; False when it has none."""
    package = Path(folder) / "package.json"
    try:
        scripts = json.loads(package.read_text(encoding="utf-8")).get("scripts") or {}
    except (OSError, ValueError, AttributeError):
        return False
    if "build" not in scripts:
        return False
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError("package.json has a build script but npm is not installed; install Node.js")
    if subprocess.run([npm, "run", "build"], cwd=folder).returncode != 0:
        raise BuildError("npm run build failed (see its output above); fix it and save again")
    return True


def watch(folder: str | Path, interval: float = 0.5) -> Iterator[list[str]]:
    """The changed paths (added, modified, removed), each time the folder's files change.

    The first snapshot is taken by this call, so every change made after it is
    seen. Later snapshots are taken when the consumer resumes, so files it
    wrote itself (a build) do not count as the next change.
    """
    return _changes(folder, watched_files(folder), interval)


def _changes(folder: str | Path, before: dict[str, int], interval: float) -> Iterator[list[str]]:
    while True:
        time.sleep(interval)
        now = watched_files(folder)
        if now == before:
            continue
        time.sleep(interval)  # let an editor or a build finish writing
        now = watched_files(folder)
        changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
        if changed:
            yield changed
        before = watched_files(folder)
