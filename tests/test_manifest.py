"""manifest.json validation: the verdicts of Alga's publisher, every problem naming its field.

CASES is the table of manifests Alga's own ``parseManifestJson`` was run on (the verdicts and
the issue paths, in Alga's order, were recorded from that run); ``parse`` must agree on each.
"""
import json

import pytest

from standalone.manifest import DEFAULT_PUBLISHER, ManifestError, load, parse, resolve_version, validate

B = {"name": "com.example.t", "publisher": "Example", "version": "1.0.0", "runtime": "wasm-js@1"}
E = {"method": "GET", "path": "/api/status", "handler": "dist/main"}
UI = {"type": "iframe", "entry": "ui/index.html"}
DROP = object()


def with_(**changes) -> str:
    doc = {**B, **changes}
    return json.dumps({k: v for k, v in doc.items() if v is not DROP})


def endpoint(**changes) -> str:
    ep = {k: v for k, v in {**E, **changes}.items() if v is not DROP}
    return with_(api={"endpoints": [ep]})


def hooks(value) -> str:
    return with_(ui={**UI, "hooks": value})


CASES = [  # (manifest text, issue paths; [] = accepted)
    (json.dumps(B), []),
    (with_(version="1.2.*"), []),
    (with_(version="1.*"), ["version"]),
    (with_(version="1.2.x"), ["version"]),
    (with_(version="v1.2.3"), ["version"]),
    (with_(version="1.2"), ["version"]),
    (with_(version="1.2.3-beta.1+build.5"), []),
    (with_(version=" 1.2.3 "), []),
    (with_(version=1), ["version"]),
    (with_(version=None), ["version"]),
    (with_(version="1.2.3-"), ["version"]),
    (with_(version="1.2.3+"), ["version"]),
    (with_(version="1.2.3-rc_1"), ["version"]),
    (with_(version="*"), ["version"]),
    (with_(runtime="wasm"), ["runtime"]),
    (with_(runtime="ui-only"), []),
    (with_(runtime=DROP), ["runtime"]),
    (with_(runtime=""), ["runtime"]),
    (with_(name="   "), ["name"]),
    (with_(name=DROP), ["name"]),
    (with_(publisher=None), ["publisher"]),
    (with_(publisher=""), ["publisher"]),
    (with_(publisher=DROP), []),
    (with_(description="x"), ["description"]),
    (json.dumps({"$schema": "x", **B}), ["$schema"]),
    (with_(capabilities=["http.fetch", "storage.kv"]), []),
    (with_(capabilities=["cap:does.not.exist"]), []),
    (with_(capabilities=[""]), ["capabilities[0]"]),
    (with_(capabilities=None), ["capabilities"]),
    (with_(capabilities="cap:log.emit"), ["capabilities"]),
    (with_(capabilities=[]), []),
    (with_(ui=None), ["ui"]),
    (with_(ui={"type": "iframe"}), ["ui.entry"]),
    (with_(ui={"type": "IFRAME", "entry": "ui/index.html"}), ["ui.type"]),
    (with_(ui={"type": "iframe", "entry": "../ui/index.html"}), ["ui.entry"]),
    (with_(ui={**UI, "routes": [{"path": "/", "title": "Home"}]}), []),
    (hooks(None), ["ui.hooks"]),
    (hooks([]), ["ui.hooks"]),
    (hooks({"appMenu": None}), ["ui.hooks.appMenu"]),
    (hooks({"appMenu": {}}), ["ui.hooks.appMenu.label"]),
    (hooks({"appMenu": {"label": "  "}}), ["ui.hooks.appMenu.label"]),
    (hooks({"appMenu": "Menu"}), ["ui.hooks.appMenu"]),
    (hooks({"appMenu": {"label": "X", "icon": "y"}}), []),
    (hooks({"clientPortalMenu": {"label": "Portal"}}), []),
    (hooks({"clientPortalMenu": None}), ["ui.hooks.clientPortalMenu"]),
    (hooks({"settingsTab": 5}), []),
    (with_(api=None), ["api"]),
    (with_(api={}), ["api.endpoints"]),
    (with_(api={"endpoints": None}), ["api.endpoints"]),
    (with_(api={"endpoints": []}), []),
    (with_(api=[]), ["api"]),
    (endpoint(method="options"), []),
    (endpoint(method="HEAD"), []),
    (endpoint(method="CONNECT"), ["api.endpoints[0].method"]),
    (endpoint(method=" GET"), ["api.endpoints[0].method"]),
    (endpoint(path="api/status"), []),
    (endpoint(path=".//api//status"), []),
    (endpoint(path="/api/a b"), ["api.endpoints[0].path"]),
    (endpoint(path="/api/a\tb"), ["api.endpoints[0].path"]),
    (endpoint(path="/api/../x"), ["api.endpoints[0].path"]),
    (endpoint(path="/files/a..b"), ["api.endpoints[0].path"]),
    (endpoint(path="/a b/.."), ["api.endpoints[0].path", "api.endpoints[0].path"]),
    (endpoint(path="/api/items/:id"), []),
    (endpoint(path=""), ["api.endpoints[0].path"]),
    (endpoint(path="/"), []),
    (endpoint(handler=DROP), ["api.endpoints[0].handler"]),
    (endpoint(handler="../dist/main"), ["api.endpoints[0].handler"]),
    (endpoint(method=DROP), ["api.endpoints[0].method"]),
    (with_(api={"endpoints": ["GET /api/status"]}), ["api.endpoints[0]"]),
    (with_(assets=None), ["assets"]),
    (with_(assets=["ui/**/*"]), []),
    (with_(precompiled={"x86_64-linux": "precompiled/x.cwasm"}), []),
    (with_(precompiled={"": "a.cwasm"}), ["precompiled"]),
    (with_(precompiled=[]), ["precompiled"]),
    (with_(precompiled={"x": ""}), ["precompiled.x"]),
    ("[]", ["$"]),
    ("null", ["$"]),
    ('{"name":"a","version":"1.0.0","runtime":"x-y",}', ["$"]),
    ("\ufeff" + json.dumps(B), ["$"]),
    ('{"name":"a","version":"1.0.0","runtime":"x-y","assets":NaN}', ["$"]),
    ('{"name":"a","version":"bad","version":"1.0.0","runtime":"x-y"}', []),
    ('{"name":"","version":"1","runtime":"x","extra":1}', ["extra", "name", "version", "runtime"]),
]


@pytest.mark.parametrize("text, paths", CASES, ids=[f"{i}" for i in range(len(CASES))])
def test_same_verdict_as_alga_publisher(text, paths):
    if not paths:
        parse(text)
        return
    with pytest.raises(ManifestError) as info:
        parse(text)
    assert [field for field, _ in info.value.problems] == paths
    assert all(message for _, message in info.value.problems)


def test_accepted_edge_cases_are_stored_as_finalize_stores_them():
    m = parse(json.dumps({**B, "version": " 0.3.* ", "capabilities": ["http.fetch", " CAP:Log.Emit "],
                          "api": {"endpoints": [{"method": "head", "path": ".//api//status", "handler": "./dist//main"},
                                                {"method": "options", "path": "items/:id", "handler": "dist/main"}]}}))
    assert m.version == "0.3.*" and m.wildcard_version
    assert m.endpoint_dicts() == [{"method": "HEAD", "path": "/api/status", "handler": "dist/main"},
                                  {"method": "OPTIONS", "path": "/items/:id", "handler": "dist/main"}]
    assert m.capabilities == ["http.fetch", "cap:log.emit"]  # http.fetch is not granted at install
    assert m.warnings == ["capabilities[0]: 'http.fetch' is not a capability the runner knows "
                          "(did you mean cap:http.fetch?); it is not granted"]


@pytest.mark.parametrize("existing, resolved", [
    ([], "1.2.0"),
    (["1.2.0", "1.2.4", "1.2.4-beta", "1.3.7", "1.2.10"], "1.2.11"),
    (["1.2.05"], "1.2.6"),
    (["1.2.9-rc.1"], "1.2.0"),
])
def test_wildcard_takes_the_next_free_patch(existing, resolved):
    assert resolve_version("1.2.*", existing) == resolved


def test_messages_name_what_is_wanted():
    with pytest.raises(ManifestError) as info:
        parse(endpoint(method="CONNECT"))
    assert info.value.problems == [("api.endpoints[0].method",
                                    "'CONNECT' is not one of GET, POST, PUT, PATCH, DELETE, OPTIONS, HEAD")]
    with pytest.raises(ManifestError, match=r"\$: not valid JSON"):
        parse("{nope")


def test_minimal_manifest_defaults_the_publisher():
    m = validate({"name": "x", "version": "0.0.1", "runtime": "wasm-js@1"})
    assert m.publisher == DEFAULT_PUBLISHER and m.ui is None and m.endpoints == [] and m.capabilities == []
    assert not m.wildcard_version


def test_load_reports_missing_and_broken_files(tmp_path):
    with pytest.raises(ManifestError) as info:
        load(tmp_path)
    assert info.value.problems[0][0] == "manifest.json"
    (tmp_path / "manifest.json").write_text("{nope")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load(tmp_path)
    (tmp_path / "manifest.json").write_bytes(b'{"name": "\xff"}')
    with pytest.raises(ManifestError, match="not UTF-8"):
        load(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps(B))
    assert load(tmp_path).name == "com.example.t"
