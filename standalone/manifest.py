"""manifest.json validation with the verdicts of Alga's publisher (its finalize step).

The same manifests are accepted and refused as there (tests/test_manifest.py has the case
table): ``X.Y.*`` versions (install picks the next free patch, :func:`resolve_version`),
OPTIONS and HEAD endpoints, capabilities of any name (unknown ones are warned about here and
dropped at install, as Alga drops them), endpoint paths without a leading ``/`` (it is added),
and every present key checked, so ``null`` sections are refused. JSON is read the way
JavaScript's ``JSON.parse`` reads it (no ``NaN``, no BOM; the last duplicate key wins) and
strings are trimmed by JavaScript's rules. Every problem names the field it is about
(``api.endpoints[0].path``), all at once, so one ``flask ext pack`` lists everything to fix.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.policy.capabilities import KNOWN

KNOWN_KEYS = ("name", "publisher", "version", "runtime", "capabilities", "ui", "api", "assets", "precompiled")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD")
DEFAULT_PUBLISHER = "local-dev"  # what the reference install script uses when none is given
MENU_HOOKS = ("appMenu", "clientPortalMenu")

# JavaScript's String.prototype.trim and regex \s: WhiteSpace + LineTerminator (U+FEFF included).
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
            "\u2028\u2029\u202f\u205f\u3000\ufeff"
_HAS_SPACE = re.compile(f"[{_JS_SPACE}]")
_SEMVER = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+(-[A-Za-z0-9.-]+)?(\+[A-Za-z0-9.-]+)?")
_WILDCARD = re.compile(r"([0-9]+\.[0-9]+)\.\*")



class Problems(list):
    """(field, message) pairs; calling it adds one."""

    def __call__(self, where: str, message: str) -> None:
        self.append((where, message))


Bad = Problems


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
    version: str  # trimmed; may be a wildcard X.Y.* until resolve_version
    runtime: str
    capabilities: list[str]  # trimmed, lower-cased, unique (unknown names kept: install drops them)
    ui: dict | None
    api: dict
    endpoints: list[Endpoint]
    raw: dict
    warnings: list[str] = field(default_factory=list)

    @property
    def ui_entry(self) -> str | None:
        return self.ui["entry"] if self.ui else None

    @property
    def wildcard_version(self) -> bool:
        return _WILDCARD.fullmatch(self.version) is not None

    def endpoint_dicts(self) -> list[dict[str, str]]:
        return [e.to_dict() for e in self.endpoints]


def js_trim(text: str) -> str:
    return text.strip(_JS_SPACE)


def resolve_version(wildcard: str, existing: list[str]) -> str:
    """``X.Y.*`` → ``X.Y.<highest plain X.Y.N in existing + 1>``, or ``X.Y.0`` (what finalize does).

    Pre-release and build versions do not count; patch numbers compare as numbers."""
    prefix = _WILDCARD.fullmatch(wildcard).group(1)
    pattern = re.compile(re.escape(prefix) + r"\.([0-9]+)")
    patches = [int(m.group(1)) for m in map(pattern.fullmatch, existing) if m]
    return f"{prefix}.{max(patches, default=-1) + 1}"


def load(folder: str | Path) -> Manifest:
    """Read and validate ``<folder>/manifest.json``."""
    path = Path(folder) / "manifest.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError([("manifest.json", f"not found in {Path(folder)}")]) from None
    except UnicodeDecodeError as e:
        raise ManifestError([("manifest.json", f"not UTF-8 text: {e}")]) from None
    return parse(text)


def parse(text: str) -> Manifest:
    """Validate manifest text; JSON syntax problems are reported at ``$``."""
    try:
        doc = json.loads(text, parse_constant=_no_constant)
    except ValueError as e:
        raise ManifestError([("$", f"not valid JSON: {e}")]) from None
    return validate(doc)


def validate(doc: Any) -> Manifest:
    if not isinstance(doc, dict):
        raise ManifestError([("$", "the manifest must be a JSON object")])
    bad = Problems()
    for key in doc:
        if key not in KNOWN_KEYS:
            bad(key, f"unknown field (allowed: {', '.join(KNOWN_KEYS)})")
    name = _required_text(doc, "name", bad, "a non-empty string such as com.example.my-extension")
    version = _version(doc.get("version"), bad)
    runtime = _runtime(doc.get("runtime"), bad)
    publisher = DEFAULT_PUBLISHER
    if "publisher" in doc:
        publisher = _required_text(doc, "publisher", bad, "a non-empty string when given (or leave it out)")
    capabilities, warnings = _capabilities(doc, bad)
    _strings(doc, "assets", bad)
    _precompiled(doc, bad)
    ui = _ui(doc["ui"], bad) if "ui" in doc else None
    api, endpoints = _api(doc["api"], bad) if "api" in doc else ({}, [])
    if bad:
        raise ManifestError(list(bad))
    return Manifest(name=name, publisher=publisher, version=version, runtime=runtime, capabilities=capabilities,
                    ui=ui, api=api, endpoints=endpoints, raw=doc, warnings=warnings)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _filled(value: Any) -> bool:
    return isinstance(value, str) and js_trim(value) != ""


def _required_text(doc: dict, key: str, bad: Bad, wanted: str) -> str:
    value = doc.get(key)
    if not _filled(value):
        bad(key, f"must be {wanted}")
        return ""
    return js_trim(value)


def _version(value: Any, bad: Bad) -> str:
    if not isinstance(value, str):
        bad("version", "is required and must be a string such as \"1.2.3\"")
        return ""
    version = js_trim(value)
    if not (_SEMVER.fullmatch(version) or _WILDCARD.fullmatch(version)):
        bad("version", f"{value!r} is not a version such as 1.2.3, 1.2.3-beta.1, 1.2.3+build or 1.2.*")
    return version


def _runtime(value: Any, bad: Bad) -> str:
    if not isinstance(value, str):
        bad("runtime", "is required and must be a string such as \"wasm-js@1\"")
        return ""
    runtime = js_trim(value)
    if not runtime or ("@" not in runtime and "-" not in runtime):
        bad("runtime", f"{value!r} is not a runtime such as wasm-js@1 (it must contain '@' or '-')")
    return runtime


def _strings(doc: dict, key: str, bad: Bad) -> list[str]:
    """A present key must hold an array of non-blank strings."""
    if key not in doc:
        return []
    value = doc[key]
    if not isinstance(value, list):
        bad(key, "must be an array of non-empty strings (or leave it out)")
        return []
    for i, item in enumerate(value):
        if not _filled(item):
            bad(f"{key}[{i}]", "must be a non-empty string")
    return [item for item in value if _filled(item)]


def _capabilities(doc: dict, bad: Bad) -> tuple[list[str], list[str]]:
    names, warnings = [], []
    _strings(doc, "capabilities", bad)
    listed = doc.get("capabilities")
    for i, cap in enumerate(listed if isinstance(listed, list) else []):
        if not _filled(cap):
            continue
        normal = js_trim(cap).lower()
        if normal not in KNOWN:
            hint = f" (did you mean cap:{normal}?)" if f"cap:{normal}" in KNOWN else ""
            warnings.append(f"capabilities[{i}]: {cap!r} is not a capability the runner knows{hint}; "
                            "it is not granted")
        names.append(normal)
    return list(dict.fromkeys(names)), warnings


def _precompiled(doc: dict, bad: Bad) -> None:
    if "precompiled" not in doc:
        return
    value = doc["precompiled"]
    if not isinstance(value, dict):
        bad("precompiled", "must be an object mapping a target to a file, such as {\"x86_64-linux\": \"a.cwasm\"}")
        return
    for target, path in value.items():
        if not js_trim(target):
            bad("precompiled", "has an empty target name")
        if not _filled(path):
            bad(f"precompiled.{target}", "must be a non-empty file path")


def _ui(ui: Any, bad: Bad) -> dict | None:
    if not isinstance(ui, dict):
        bad("ui", "must be an object such as {\"type\": \"iframe\", \"entry\": \"ui/index.html\"} (or leave it out)")
        return None
    if ui.get("type") != "iframe":
        bad("ui.type", "must be exactly \"iframe\"")
    entry = ui.get("entry")
    if not _filled(entry):
        bad("ui.entry", "is required: the UI's HTML file, such as ui/index.html")
    elif ".." in entry:
        bad("ui.entry", "must not contain '..'")
    if "hooks" in ui:
        hooks = ui["hooks"]
        if not isinstance(hooks, dict):
            bad("ui.hooks", "must be an object (or leave it out)")
            return ui
        for menu in MENU_HOOKS:
            if menu not in hooks:
                continue
            item = hooks[menu]
            if not isinstance(item, dict):
                bad(f"ui.hooks.{menu}", "must be an object such as {\"label\": \"My extension\"} (or leave it out)")
            elif not _filled(item.get("label")):
                bad(f"ui.hooks.{menu}.label", "is required and must be a non-empty string")
    return ui


def _api(api: Any, bad: Bad) -> tuple[dict, list[Endpoint]]:
    if not isinstance(api, dict):
        bad("api", "must be an object with an \"endpoints\" array (or leave it out)")
        return {}, []
    if "endpoints" not in api:
        bad("api.endpoints", "is required when api is given")
        return api, []
    if not isinstance(api["endpoints"], list):
        bad("api.endpoints", "must be an array of {method, path, handler}")
        return api, []
    endpoints = [_endpoint(ep, f"api.endpoints[{i}]", bad) for i, ep in enumerate(api["endpoints"])]
    return api, [e for e in endpoints if e is not None]


def _endpoint(ep: Any, where: str, bad: Bad) -> Endpoint | None:
    if not isinstance(ep, dict):
        bad(where, "must be an object {method, path, handler}")
        return None
    before = len(bad)
    method, path, handler = ep.get("method"), ep.get("path"), ep.get("handler")
    if not _filled(method):
        bad(f"{where}.method", f"is required: one of {', '.join(METHODS)}")
    elif method.upper() not in METHODS:  # case-insensitive, but not trimmed
        bad(f"{where}.method", f"{method!r} is not one of {', '.join(METHODS)}")
    if not _filled(path):
        bad(f"{where}.path", "is required, such as /api/items/:id")
    else:
        if _HAS_SPACE.search(path):
            bad(f"{where}.path", "must not contain spaces")
        if ".." in path:
            bad(f"{where}.path", "must not contain '..'")
    if not _filled(handler):
        bad(f"{where}.handler", "is required, such as dist/main")
    elif ".." in handler:
        bad(f"{where}.handler", "must not contain '..'")
    if len(bad) != before:
        return None
    return Endpoint(method.upper(), "/" + _clean_path(path).lstrip("/"), _clean_path(handler))


def _clean_path(path: str) -> str:
    """What finalize stores: leading ``./`` removed, runs of ``/`` collapsed."""
    while path.startswith("./"):
        path = path[2:]
    return re.sub(r"/{2,}", "/", path)
