"""Validating a custom resource against its CustomResourceDefinition's own schema, strictly.

Knative Serving's CRD for ``serving.knative.dev/v1`` Services (``config/core/300-resources/
service.yaml`` in knative/serving) carries a structural OpenAPI v3 schema. The API server prunes
unknown fields and ``kubectl --validate=strict`` reports them; JSON Schema would let them pass,
so :func:`strict_schema` closes every object that lists its properties, unless the CRD marks it
``x-kubernetes-preserve-unknown-fields`` (fields behind Knative feature flags are such objects).

The CRD file is not committed here (it is another project's file, taken from its repository, and
this project keeps none of those). :func:`find_crd` looks for it in ``$KNATIVE_SERVING_CRD`` or in
``shared/research/schemas/`` beside the checkout; the tests that need it skip, saying so, when it
is in neither.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from helpers import ROOT

CRD_ENV = "KNATIVE_SERVING_CRD"
CRD_NAMES = ("knative-serving-service-crd.yaml", "knative-serving-v1.23.0-service.yaml")
CRD_DIRS = (ROOT.parent / "shared" / "research" / "schemas", ROOT.parent / "shared" / "schemas")


def find_crd() -> Path | None:
    if os.environ.get(CRD_ENV):
        return Path(os.environ[CRD_ENV])
    for folder in CRD_DIRS:
        for name in CRD_NAMES:
            if (folder / name).is_file():
                return folder / name
    return None


def crd_version_schema(crd: dict, version: str) -> dict:
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            return v["schema"]["openAPIV3Schema"]
    raise KeyError(f"{crd['metadata']['name']} has no version {version}")


def strict_schema(node: Any) -> Any:
    """The CRD's OpenAPI v3 schema as JSON Schema that rejects fields the API server would prune."""
    if isinstance(node, list):
        return [strict_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: v for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in out:
        out["properties"] = {k: strict_schema(v) for k, v in out["properties"].items()}
        if not node.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in out:
            out["additionalProperties"] = False
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = strict_schema(out[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in out:
            out[key] = strict_schema(out[key])
    return out


def validation_errors(resource: dict, crd_path: Path) -> list[str]:
    """Every problem of ``resource`` against the CRD at ``crd_path``, as ``path: message`` lines."""
    import jsonschema

    crd = yaml.safe_load(crd_path.read_text())
    group = crd["spec"]["group"]
    api_group, _, version = resource["apiVersion"].partition("/")
    assert api_group == group and resource["kind"] == crd["spec"]["names"]["kind"], "not this CRD's kind"
    validator = jsonschema.Draft7Validator(strict_schema(crd_version_schema(crd, version)))
    return sorted(f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                  for e in validator.iter_errors(resource))
