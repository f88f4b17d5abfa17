"""The /v1/execute request schema: statuses and named fields (no worker needed)."""
import json

import pytest
from helpers import execute_body

from runner.contract import RequestRejected, hash_hex, parse_execute

HEX = "ab" * 32


def parse(doc, content_type="application/json"):
    return parse_execute(content_type, json.dumps(doc).encode() if not isinstance(doc, bytes) else doc)


def test_minimal_request_parses_with_defaults():
    req = parse({"context": {"tenant_id": "t", "extension_id": "e", "content_hash": HEX},
                 "http": {"method": "GET", "path": "/"}})
    assert req.http.query == {} and req.http.headers == {} and req.http.body_b64 is None
    assert req.limits.timeout_ms is None and req.providers == [] and req.user is None
    assert req.context.config == {}


def test_unknown_fields_are_ignored():
    doc = execute_body(HEX, endpoint="x", config={"a": "b"}, http={"url": "/x"}, context={"trigger": "schedule"})
    assert parse(doc).context.tenant_id == "tenant-a"


def test_user_company_name_alias():
    doc = execute_body(HEX, user={"user_id": "u", "user_email": "e", "user_name": "n", "user_type": "msp",
                                  "company_name": "Acme"})
    assert parse(doc).user.client_name == "Acme"


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_wrong_content_type_is_415(content_type):
    with pytest.raises(RequestRejected) as e:
        parse(execute_body(HEX), content_type)
    assert e.value.status == 415


def test_malformed_json_is_400():
    with pytest.raises(RequestRejected) as e:
        parse(b"{not json")
    assert e.value.status == 400 and e.value.error == "malformed_json"


@pytest.mark.parametrize("mutate,field", [
    (lambda d: d.pop("context"), "context"),
    (lambda d: d["context"].pop("tenant_id"), "context.tenant_id"),
    (lambda d: d["context"].update(content_hash=5), "context.content_hash"),
    (lambda d: d["http"].update(headers={"x": 1}), "http.headers.x"),
    (lambda d: d["http"].update(query=[]), "http.query"),
    (lambda d: d["limits"].update(timeout_ms=-1), "limits.timeout_ms"),
    (lambda d: d["limits"].update(memory_mb="64"), "limits.memory_mb"),
    (lambda d: d.update(providers="cap:x"), "providers"),
    (lambda d: d.update(secret_envelope={}), "secret_envelope.ciphertext_b64"),
    (lambda d: d.update(user={"user_id": "u"}), "user.user_email"),
    (lambda d: d.update(context=[]), "context"),
])
def test_schema_violations_are_422_naming_the_field(mutate, field):
    doc = execute_body(HEX)
    mutate(doc)
    with pytest.raises(RequestRejected) as e:
        parse(doc)
    assert e.value.status == 422 and e.value.field == field
    assert field in e.value.body()["message"]


@pytest.mark.parametrize("value,expected", [
    (f"sha256:{HEX}", HEX), (HEX, HEX), (f"sha256:{HEX.upper()}", HEX),
    ("sha256:dummy", None), ("sha256:", None), ("../../etc", None), (f"md5:{HEX}", None), (HEX + "0", None),
])
def test_content_hash_forms(value, expected):
    assert hash_hex(value) == expected
