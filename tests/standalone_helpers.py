"""Helpers for the standalone-mode tests: extension folders on disk, installing them into an app."""
from __future__ import annotations

import json
from pathlib import Path

from helpers import GUESTS

from standalone.installer import Installer, InstallResult

# Endpoints of the SDK test guest (tests/fixtures/guests/js/src/sdk-fixture.ts) the tests call.
SDK_ENDPOINTS = [
    {"method": "GET", "path": "/status", "handler": "dist/main"},
    {"method": "GET", "path": "/dynamic/:name", "handler": "dist/main"},
    {"method": "POST", "path": "/dynamic/echo", "handler": "dist/main"},
    {"method": "POST", "path": "/call", "handler": "dist/main"},
    {"method": "GET", "path": "/log", "handler": "dist/main"},
]
SDK_CAPABILITIES = ["cap:storage.kv", "cap:secrets.get", "cap:client.read", "cap:service.read",
                    "cap:scheduler.manage"]


def write_extension(folder: Path, *, name: str, wasm: Path | bytes | None, endpoints: list[dict],
                    capabilities: list[str] = (), ui_html: str | None = "<h1>hello</h1>",
                    version: str = "1.0.0") -> Path:
    """An extension source folder: manifest.json, dist/main.wasm (linked) and ui/index.html."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"name": name, "publisher": "Tests", "version": version, "runtime": "wasm-js@1",
                "capabilities": list(capabilities), "api": {"endpoints": endpoints}}
    if ui_html is not None:
        manifest["ui"] = {"type": "iframe", "entry": "ui/index.html"}
        (folder / "ui").mkdir(exist_ok=True)
        (folder / "ui" / "index.html").write_text(ui_html)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    if wasm is not None:
        (folder / "dist").mkdir(exist_ok=True)
        target = folder / "dist" / "main.wasm"
        target.unlink(missing_ok=True)
        if isinstance(wasm, bytes):
            target.write_bytes(wasm)
        else:
            target.symlink_to(wasm)
    return folder


def sdk_extension(folder: Path) -> Path:
    """The SDK test guest as an installable extension; same files, same hash, so it compiles once per cache."""
    return write_extension(folder, name="com.tests.sdk", wasm=GUESTS / "sdk.wasm", endpoints=SDK_ENDPOINTS,
                           capabilities=SDK_CAPABILITIES)


def installer(app) -> Installer:
    from app import service_of

    return service_of(app).standalone.installer()


def install(app, folder: Path, tenant: str | None = None) -> InstallResult:
    return installer(app).install(folder, tenant)
