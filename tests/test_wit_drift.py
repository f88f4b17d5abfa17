"""Every committed component imports exactly the project's WIT types, so a drift cannot come back.

wasmtime-py takes record types from the guest, so a component built against a different WIT
runs here unnoticed, while wasmtime's Rust host (the reference runner) refuses to instantiate
it. wasm-tools (pinned in the test extras) reads the imports of each component and the
project's WIT into the same JSON form; each imported function and type must be the project's,
field for field and in order (components import a subset of the world).
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

WASM_TOOLS = Path(sys.executable).parent / "wasm-tools"
WIT = ROOT / "runner" / "wit"
GUESTS = ROOT / "tests" / "fixtures" / "guests"
COMPONENTS = [GUESTS / "sdk.wasm", GUESTS / "mini.component.wat", GUESTS / "py-guest.wasm", GUESTS / "legacy.wasm",
              GUESTS / "legacy-old-wit.wasm", ROOT / "samples" / "sdk-handler" / "dist" / "main.wasm"]
PACKAGE = "alga:extension"


class Resolve:
    """wasm-tools' JSON of a WIT package or a component's world, with types rendered by structure."""

    def __init__(self, path: Path):
        out = subprocess.run([str(WASM_TOOLS), "component", "wit", "--json", str(path)], capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        self.doc = json.loads(out.stdout)

    def type(self, ref) -> object:
        """A type as nested tuples: primitives by name, named types by their definition."""
        if isinstance(ref, str):
            return ref
        kind = self.doc["types"][ref]["kind"]
        (tag, body), = kind.items() if isinstance(kind, dict) else ((kind, None),)
        if tag == "type":  # a `use` alias
            return self.type(body)
        if tag == "record":
            return ("record", tuple((f["name"], self.type(f["type"])) for f in body["fields"]))
        if tag in ("enum", "flags"):
            return (tag, tuple(c["name"] for c in body["cases" if tag == "enum" else "flags"]))
        if tag == "variant":
            return ("variant", tuple((c["name"], c.get("type") and self.type(c["type"])) for c in body["cases"]))
        if tag in ("option", "list"):
            return (tag, self.type(body))
        if tag == "tuple":
            return ("tuple", tuple(self.type(t) for t in body["types"]))
        if tag == "result":
            return ("result", body.get("ok") and self.type(body["ok"]), body.get("err") and self.type(body["err"]))
        raise AssertionError(f"no rendering for WIT type kind {tag!r}")

    def function(self, f: dict) -> object:
        return (tuple((p["name"], self.type(p["type"])) for p in f["params"]),
                f.get("result") is not None and self.type(f["result"]))

    def interfaces(self) -> dict[str, dict]:
        """``name`` -> {"types": {name: rendering}, "functions": {name: rendering}} of the alga package."""
        package = next(p for p in self.doc["packages"] if p["name"] == PACKAGE)
        out = {}
        for name, index in package["interfaces"].items():
            iface = self.doc["interfaces"][index]
            out[name] = {"types": {t: self.type(i) for t, i in iface["types"].items()},
                         "functions": {f: self.function(d) for f, d in iface["functions"].items()}}
        return out

    def exports(self) -> dict[str, object]:
        world = self.doc["worlds"][-1]
        return {n: self.function(e["function"]) for n, e in world["exports"].items() if "function" in e}


@pytest.fixture(scope="module")
def project() -> Resolve:
    return Resolve(WIT)


@pytest.mark.parametrize("component", COMPONENTS, ids=[p.name for p in COMPONENTS])
def test_component_imports_are_the_projects_types(project, component):
    ours, theirs = project.interfaces(), Resolve(component)
    imported = theirs.interfaces()
    assert imported, f"{component.name} imports nothing from {PACKAGE}"
    for name, iface in imported.items():
        assert name in ours, f"{component.name} imports {PACKAGE}/{name}, which the WIT does not declare"
        for kind in ("types", "functions"):
            for item, rendering in iface[kind].items():
                assert ours[name][kind].get(item) == rendering, (
                    f"{component.name}: {PACKAGE}/{name} {item} differs from runner/wit/extension-runner.wit")
    assert theirs.exports() == {"handler": project.exports()["handler"]}


def test_the_records_the_reference_has(project):
    """The two records this project once had differently from the reference's WIT."""
    types = project.interfaces()["types"]["types"]
    assert [f for f, _ in types["user-data"][1]] == ["tenant-id", "client-name", "user-id", "user-email",
                                                     "user-name", "user-type"]
    assert [f for f, _ in types["user-data-v2"][1]][-2:] == ["client-id", "additional-fields"]
    assert [f for f, _ in types["service-summary"][1]] == [
        "service-id", "service-name", "item-kind", "billing-method", "service-type-id", "service-type-name",
        "default-rate", "unit-of-measure", "is-active", "sku"]


def test_a_drifted_component_is_caught(project, tmp_path):
    """The check itself: a component embedding a WIT whose user-data still has client-id fails it."""
    wit = (WIT / "extension-runner.wit").read_text().replace(
        "        user-type: string,\n    }\n\n    record user-data-v2",
        "        user-type: string,\n        client-id: option<string>,\n    }\n\n    record user-data-v2")
    (tmp_path / "wit").mkdir()
    (tmp_path / "wit" / "drifted.wit").write_text(wit)
    component = tmp_path / "drifted.wasm"
    subprocess.run([str(WASM_TOOLS), "component", "wit", str(tmp_path / "wit"), "--wasm", "-o", str(component)],
                   check=True, timeout=60)
    theirs = Resolve(component).interfaces()
    assert theirs["types"]["types"]["user-data"] != project.interfaces()["types"]["types"]["user-data"]
