"""manifest.json validation: the reference publisher's rules, every problem naming its field."""
import json

import pytest

from standalone.manifest import DEFAULT_PUBLISHER, ManifestError, load, validate

GOOD = {
    "name": "com.example.demo", "publisher": "Example", "version": "1.2.3-beta.1+build.5", "runtime": "wasm-js@1",
    "capabilities": ["cap:storage.kv", "CAP:Log.Emit "],
    "ui": {"type": "iframe", "entry": "ui/index.html", "hooks": {"appMenu": {"label": "Demo"}}},
    "api": {"endpoints": [{"method": "get", "path": "/items/:id", "handler": "dist/main"},
                          {"method": "POST", "path": "//items", "handler": "dist/main"}]},
    "assets": ["ui/**/*"], "precompiled": {"x86_64": "precompiled/x86_64.cwasm"},
}


def fields(doc) -> set[str]:
    with pytest.raises(ManifestError) as info:
        validate(doc)
    return {field for field, _ in info.value.problems}


def test_valid_manifest_is_normalised():
    m = validate(GOOD)
    assert (m.name, m.publisher, m.version, m.runtime) == ("com.example.demo", "Example", "1.2.3-beta.1+build.5",
                                                           "wasm-js@1")
    assert m.capabilities == ["cap:storage.kv", "cap:log.emit"]
    assert [e.to_dict() for e in m.endpoints] == [
        {"method": "GET", "path": "/items/:id", "handler": "dist/main"},
        {"method": "POST", "path": "/items", "handler": "dist/main"}]
    assert m.ui_entry == "ui/index.html" and m.warnings == []


def test_minimal_manifest_defaults_the_publisher():
    m = validate({"name": "x", "version": "0.0.1", "runtime": "wasm-js@1"})
    assert m.publisher == DEFAULT_PUBLISHER and m.ui is None and m.endpoints == [] and m.capabilities == []


@pytest.mark.parametrize("change, field", [
    ({"name": None}, "name"),
    ({"name": "  "}, "name"),
    ({"version": "1.2"}, "version"),
    ({"version": "1.2.*"}, "version"),
    ({"version": 3}, "version"),
    ({"runtime": "wasm"}, "runtime"),
    ({"publisher": ""}, "publisher"),
    ({"displayName": "Demo"}, "displayName"),
    ({"capabilities": "cap:storage.kv"}, "capabilities"),
    ({"capabilities": ["storage.kv"]}, "capabilities[0]"),
    ({"capabilities": ["cap:log.emit", ""]}, "capabilities[1]"),
    ({"assets": [1]}, "assets[0]"),
    ({"precompiled": {"x86_64": ""}}, "precompiled.x86_64"),
    ({"ui": "ui/index.html"}, "ui"),
    ({"ui": {"type": "page", "entry": "ui/index.html"}}, "ui.type"),
    ({"ui": {"type": "iframe"}}, "ui.entry"),
    ({"ui": {"type": "iframe", "entry": "ui/../x.html"}}, "ui.entry"),
    ({"ui": {"type": "iframe", "entry": "ui/index.html", "hooks": {"appMenu": {}}}}, "ui.hooks.appMenu.label"),
    ({"api": []}, "api"),
    ({"api": {}}, "api.endpoints"),
    ({"api": {"endpoints": ["GET /x"]}}, "api.endpoints[0]"),
    ({"api": {"endpoints": [{"method": "OPTIONS", "path": "/x", "handler": "h"}]}}, "api.endpoints[0].method"),
    ({"api": {"endpoints": [{"method": "GET", "path": "x", "handler": "h"}]}}, "api.endpoints[0].path"),
    ({"api": {"endpoints": [{"method": "GET", "path": "/a b", "handler": "h"}]}}, "api.endpoints[0].path"),
    ({"api": {"endpoints": [{"method": "GET", "path": "/a/../b", "handler": "h"}]}}, "api.endpoints[0].path"),
    ({"api": {"endpoints": [{"method": "GET", "path": "/a", "handler": "../h"}]}}, "api.endpoints[0].handler"),
    ({"api": {"endpoints": [{"method": "GET", "path": "/a"}]}}, "api.endpoints[0].handler"),
])
def test_each_error_names_its_field(change, field):
    doc = {**GOOD, **change}
    doc = {k: v for k, v in doc.items() if v is not None}
    assert fields(doc) == {field}


def test_all_problems_are_reported_at_once():
    assert fields({"version": "x", "runtime": "", "extra": 1}) == {"name", "version", "runtime", "extra"}
    assert fields([]) == {"$"}


def test_unknown_capability_is_a_warning_not_an_error():
    m = validate({**GOOD, "capabilities": ["cap:teleport"]})
    assert m.capabilities == ["cap:teleport"]
    assert m.warnings == ["capabilities[0]: 'cap:teleport' is not a capability the runner knows; it will be ignored"]


def test_load_reports_missing_and_broken_files(tmp_path):
    with pytest.raises(ManifestError) as info:
        load(tmp_path)
    assert info.value.problems[0][0] == "manifest.json"
    (tmp_path / "manifest.json").write_text("{nope")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps(GOOD))
    assert load(tmp_path).name == "com.example.demo"
