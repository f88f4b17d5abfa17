"""manifest.json validation with the reference publisher's rules (reference §7.1).

Every problem is reported with the JSON path of its field (``api.endpoints[0].path``),
all at once, so one run of ``flask ext pack`` lists everything to fix.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.policy.capabilities import KNOWN

KNOWN_KEYS = ("name", "publisher", "version", "runtime", "capabilities", "ui", "api", "assets", "precompiled")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
DEFAULT_PUBLISHER = "local-dev"  # what the reference install script uses when none is given

_SEMVER = re.compile(r"^\d+\.\d+\.\d+(-[A-Za-z0-9.-]+)?(\+[A-Za-z0-9.-]+)?$")


class FieldProblems(Exception):
    """``problems`` is a list of (field, message), each naming the field it is about."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{f}: {m}" for f, m in problems))


class ManifestError(FieldProblems):
    """manifest.json breaks the publisher's rules."""


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: str

    def to_dict(self) -> dict[str, str]:
        return {"method": self.method, "path": self.path, "handler": self.handler}


@dataclass(frozen=True)
class Manifest:
    name: str
    publisher: str
    version: str
    runtime: str
    capabilities: list[str]
    ui: dict | None
    api: dict
    endpoints: list[Endpoint]
    raw: dict
    warnings: list[str] = field(default_factory=list)

    @property
    def ui_entry(self) -> str | None:
        return self.ui["entry"] if self.ui else None

    def endpoint_dicts(self) -> list[dict[str, str]]:
        return [e.to_dict() for e in self.endpoints]


def load(folder: str | Path) -> Manifest:
    """Read and validate ``<folder>/manifest.json``."""
    path = Path(folder) / "manifest.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError([("manifest.json", f"not found in {Path(folder)}")]) from None
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ManifestError([("manifest.json", f"not valid JSON: {e}")]) from None
    return validate(doc)


def validate(doc: Any) -> Manifest:
    if not isinstance(doc, dict):
        raise ManifestError([("$", "the manifest must be a JSON object")])
    problems: list[tuple[str, str]] = []
    warnings: list[str] = []

    def bad(where: str, message: str) -> None:
        problems.append((where, message))

    for key in doc:
        if key not in KNOWN_KEYS:
            bad(key, f"unknown field (allowed: {', '.join(KNOWN_KEYS)})")
    name = _text(doc, "name", bad, required=True)
    version = _text(doc, "version", bad, required=True)
    if version and not _SEMVER.match(version):
        bad("version", f"{version!r} is not a semver version such as 1.2.3 or 1.2.3-beta.1")
    runtime = _text(doc, "runtime", bad, required=True)
    if runtime and "@" not in runtime and "-" not in runtime:
        bad("runtime", f"{runtime!r} is not a runtime such as wasm-js@1")
    publisher = _text(doc, "publisher", bad, required=False) or DEFAULT_PUBLISHER

    capabilities = []
    for i, cap in enumerate(_list(doc, "capabilities", bad)):
        where = f"capabilities[{i}]"
        if not isinstance(cap, str) or not cap.strip():
            bad(where, "must be a non-empty string")
        elif not cap.strip().lower().startswith("cap:"):
            bad(where, f"{cap!r} is not a capability name (they look like cap:storage.kv)")
        else:
            capabilities.append(cap.strip().lower())
            if capabilities[-1] not in KNOWN:
                warnings.append(f"{where}: {cap!r} is not a capability the runner knows; it will be ignored")
    for i, asset in enumerate(_list(doc, "assets", bad)):
        if not isinstance(asset, str) or not asset.strip():
            bad(f"assets[{i}]", "must be a non-empty string")
    precompiled = doc.get("precompiled")
    if precompiled is not None:
        if not isinstance(precompiled, dict):
            bad("precompiled", "must be an object of target -> path")
        else:
            for target, path in precompiled.items():
                if not target.strip() or not isinstance(path, str) or not path.strip():
                    bad(f"precompiled.{target}", "must map a non-empty target to a non-empty path")

    ui = _ui(doc.get("ui"), bad)
    api, endpoints = _api(doc.get("api"), bad)
    if problems:
        raise ManifestError(problems)
    return Manifest(name=name, publisher=publisher, version=version, runtime=runtime,
                    capabilities=list(dict.fromkeys(capabilities)), ui=ui, api=api, endpoints=endpoints,
                    raw=doc, warnings=warnings)


def _text(doc: dict, key: str, bad, required: bool) -> str:
    value = doc.get(key)
    if value is None:
        if required:
            bad(key, "is required")
        return ""
    if not isinstance(value, str) or not value.strip():
        bad(key, "must be a non-empty string")
        return ""
    return value.strip()


def _list(doc: dict, key: str, bad) -> list:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        bad(key, "must be an array of strings")
        return []
    return value


def _ui(ui: Any, bad) -> dict | None:
    if ui is None:
        return None
    if not isinstance(ui, dict):
        bad("ui", "must be an object such as {\"type\": \"iframe\", \"entry\": \"ui/index.html\"}")
        return None
    if ui.get("type") != "iframe":
        bad("ui.type", "must be \"iframe\"")
    entry = ui.get("entry")
    if not isinstance(entry, str) or not entry.strip():
        bad("ui.entry", "is required: the UI's HTML file, such as ui/index.html")
    elif ".." in entry:
        bad("ui.entry", "must not contain '..'")
    hooks = ui.get("hooks")
    if hooks is not None and not isinstance(hooks, dict):
        bad("ui.hooks", "must be an object")
    elif hooks:
        for menu in ("appMenu", "clientPortalMenu"):
            item = hooks.get(menu)
            if item is None:
                continue
            label = item.get("label") if isinstance(item, dict) else None
            if not isinstance(label, str) or not label.strip():
                bad(f"ui.hooks.{menu}.label", "is required and must be a non-empty string")
    return ui


def _api(api: Any, bad) -> tuple[dict, list[Endpoint]]:
    if api is None:
        return {}, []
    if not isinstance(api, dict):
        bad("api", "must be an object with an \"endpoints\" array")
        return {}, []
    raw = api.get("endpoints")
    if not isinstance(raw, list):
        bad("api.endpoints", "is required when api is given and must be an array")
        return api, []
    endpoints = []
    for i, ep in enumerate(raw):
        where = f"api.endpoints[{i}]"
        if not isinstance(ep, dict):
            bad(where, "must be an object {method, path, handler}")
            continue
        method, path, handler = ep.get("method"), ep.get("path"), ep.get("handler")
        ok = True
        if not isinstance(method, str) or method.strip().upper() not in METHODS:
            bad(f"{where}.method", f"must be one of {', '.join(METHODS)}")
            ok = False
        if not isinstance(path, str) or not path.startswith("/"):
            bad(f"{where}.path", "is required and must start with '/'")
            ok = False
        elif re.search(r"\s", path) or ".." in path:
            bad(f"{where}.path", "must not contain spaces or '..'")
            ok = False
        if not isinstance(handler, str) or not handler.strip():
            bad(f"{where}.handler", "is required and must be a non-empty string")
            ok = False
        elif ".." in handler:
            bad(f"{where}.handler", "must not contain '..'")
            ok = False
        if ok:
            endpoints.append(Endpoint(method.strip().upper(), re.sub(r"/{2,}", "/", path), handler))
    return api, endpoints
