"""/openapi.json: a valid OpenAPI 3.1 document (openapi-spec-validator) of exactly the registered
routes, both ways, in standalone and attached mode; real answers fit their documented schemas."""
from __future__ import annotations

import hashlib
import json

import jsonschema
import pytest
from openapi_spec_validator import validate
from test_publish_api import API_KEY, TENANT, AlgaCli, cli_archive, manifest_text

import openapi
from app import service_of as svc

IMPLIED = {"HEAD", "OPTIONS"}  # Flask answers these for every GET route by itself


@pytest.fixture(scope="module")
def app(shared_dirs, tmp_path_factory):
    from helpers import base_config

    from app import create_app

    app = create_app({**base_config(shared_dirs, tmp_path_factory.mktemp("openapi")), "publish_api_key": API_KEY})
    yield app
    svc(app).lifecycle.stop()


def served(app) -> dict:
    r = app.test_client().get("/openapi.json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    return r.get_json()


def operations(doc: dict) -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, item in doc["paths"].items() for method in item
            if method in ("get", "put", "post", "delete", "options", "head", "patch", "trace")}


def registered(app) -> set[tuple[str, str]]:
    return {(openapi.openapi_path(rule.rule), method) for rule in app.url_map.iter_rules()
            for method in rule.methods - IMPLIED}


def test_the_document_is_valid_openapi_3_1(app):
    doc = served(app)
    validate(doc)  # raises on any violation of the 3.1 schema (and unresolvable $refs)
    assert doc["openapi"].startswith("3.1")


def test_every_route_is_documented_and_every_documented_route_exists(app):
    documented = operations(served(app))
    assert registered(app) <= documented, registered(app) - documented
    assert {op for op in documented if op[1] not in IMPLIED} == registered(app)
    heads = {path for path, method in documented if method == "HEAD"}  # documented HEADs are real GET routes
    assert all((path, "GET") in documented for path in heads)


def test_an_attached_app_describes_only_its_routes(make_app):
    attached = make_app(registry_base_url="http://127.0.0.1:9")
    doc = served(attached)
    validate(doc)
    assert not any(path.startswith(("/api/", "/msp/")) for path in doc["paths"])
    assert {op for op in operations(doc) if op[1] not in IMPLIED} == registered(attached)


def fits(doc: dict, schema: str, value) -> None:
    """``value`` is valid for ``#/components/schemas/<schema>`` (OpenAPI 3.1 schemas are JSON Schema 2020-12)."""
    jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{schema}",
                                     "components": doc["components"]}).validate(value)


def test_answers_fit_their_schemas(app, mini_wasm):
    doc, client = served(app), app.test_client()
    fits(doc, "Healthz", client.get("/healthz").get_json())
    fits(doc, "Readyz", client.get("/readyz").get_json())
    fits(doc, "Error", client.post("/v1/execute", json={"context": {}}).get_json())
    svc(app).standalone.registry.create_tenant(TENANT, "t")
    cli = AlgaCli(client)
    manifest = manifest_text(name="com.example.openapi")
    archive = cli_archive(manifest, mini_wasm)
    upload = cli.upload(archive).get_json()
    fits(doc, "UploadAnswer", upload)
    body = {"key": upload["upload"]["key"], "declaredHash": hashlib.sha256(archive).hexdigest(),
            "size": len(archive), "manifestJson": manifest}
    fits(doc, "FinalizeRequest", body)
    final = cli.finalize(body).get_json()
    fits(doc, "FinalizeAnswer", final)
    fits(doc, "InstallAnswer", cli.install(final["extension"]["id"], "1.0.0").get_json())
    fits(doc, "AlgaError", cli.install(final["extension"]["id"], "9.9.9").get_json())
    fits(doc, "AlgaError", cli.finalize(b"{").get_json())
    fits(doc, "UninstallAnswer", cli.uninstall(final["extension"]["id"]).get_json())
    with pytest.raises(jsonschema.ValidationError):
        fits(doc, "FinalizeAnswer", {**final, "contentHash": f"sha256:{final['contentHash']}"})


def test_readme_links_the_document():
    from helpers import ROOT

    assert "/openapi.json" in (ROOT / "README.md").read_text()


def test_the_document_is_json(app):
    assert json.loads(json.dumps(openapi.DOCUMENT)) == openapi.DOCUMENT
