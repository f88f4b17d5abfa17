"""The three callers Alga has of POST /v1/execute, reproduced request for request, against the service
running as Alga runs it: Gunicorn with Alga's own ``.env.runner``, unchanged except that its hosts
point at local stand-ins (a moto S3 server for MinIO, a fake Alga server for the internal API) and
PORT is a free port (8080 may be taken on a shared machine).

``RUNNER_SERVICE_TOKEN`` is set there; only the ext-proxy sends it (``x-runner-service-token``), the
main gateway and the scheduled-job handler send no token, and all three must get HTTP 200
envelopes. Headers and bodies are those of Alga's code (notes: callers.md §1), including undici's
own request headers, ``company_name`` vs ``client_name``, ``body_b64: ""`` for an empty body,
``http.url``, ``endpoint``, ``additional_fields``, ``context.trigger`` and ``schedule_id``.
"""
import base64
import json

import boto3
import pytest
import requests
from fakes import FakeAlga
from helpers import GUESTS, free_port, start_gunicorn, stop_process
from moto.server import ThreadedMotoServer

from storage.bundles.archive import bundle_bytes

pytestmark = pytest.mark.slow

# Alga's .env.runner (the file docker-compose.runner-dev.yml passes as env_file), with its two hosts
# as placeholders.
ENV_RUNNER = """\
RUNNER_REGISTRY_BASE_URL=http://{alga}
REGISTRY_BASE_URL=http://{alga}
STORAGE_API_BASE_URL=http://{alga}
RUNNER_BUNDLE_STORE_BASE=http://{minio}/extensions
BUNDLE_STORE_BASE=http://{minio}/extensions
RUNNER_ALGA_AUTH_KEY=local-runner-key
ALGA_AUTH_KEY=local-runner-key
RUNNER_STORAGE_API_TOKEN=local-runner-key
RUNNER_SERVICE_TOKEN=local-runner-key
RUNNER_DOCKER_PORT=8085
PORT=8080
S3_ACCESS_KEY=minioadmin
S3_SECRET_KEY=minioadmin
S3_REGION=us-east-1
S3_ENDPOINT=http://{minio}
S3_BUCKET=extensions
UI_PROXY_BASE_URL=http://{alga}
UI_PROXY_AUTH_KEY=local-runner-key
RUNNER_PUBLIC_BASE=/runner
EXT_STATIC_STRICT_VALIDATION=false
RUST_LOG=info,ext=info
"""
TENANT = "3f2b8c1e-6d4a-4e7f-9a10-2b3c4d5e6f70"
REGISTRY = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
INSTALL = "9b2d3c4e-5f60-4a71-8b92-c3d4e5f60718"
VERSION = "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d"
USER_ID = "c0ffee00-1111-4222-8333-444455556666"
# What undici (Node's fetch) adds to every request the three callers make.
UNDICI = {"accept": "*/*", "accept-language": "*", "sec-fetch-mode": "cors", "user-agent": "node",
          "accept-encoding": "gzip, deflate"}
ENVELOPE = {"ciphertext_b64": base64.b64encode(b'{"api_key":"sk-test-123"}').decode(), "algorithm": "inline/base64",
            "version": "5e0c2a4b-1f3d-4c5e-8a6b-7c8d9e0f1a2b"}
BROWSER_HEADERS = {"accept": "application/json", "accept-encoding": "gzip, deflate, br, zstd",
                   "content-type": "application/json", "user-agent": "Mozilla/5.0 (X11; Linux x86_64)"}


@pytest.fixture(scope="module")
def runner(tmp_path_factory, shared_dirs):
    """Gunicorn with .env.runner; yields (base URL, content hash)."""
    work = tmp_path_factory.mktemp("alga-callers")
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    minio = "%s:%s" % moto.get_host_and_port()
    s3 = boto3.client("s3", endpoint_url=f"http://{minio}", region_name="us-east-1", aws_access_key_id="minioadmin",
                      aws_secret_access_key="minioadmin")
    s3.create_bucket(Bucket="extensions")
    data, digest = bundle_bytes({"dist/main.wasm": GUESTS / "sdk.wasm"})
    s3.put_object(Bucket="extensions", Key=f"tenants/{TENANT}/extensions/{REGISTRY}/sha256/{digest}/bundle.tar.zst",
                  Body=data)
    alga = FakeAlga(token="local-runner-key")
    env = dict(line.split("=", 1) for line in ENV_RUNNER.format(alga=alga.url.removeprefix("http://"),
                                                                 minio=minio).splitlines())
    env.update({"PORT": str(free_port()), "EXT_CACHE_ROOT": str(shared_dirs["cache"]), "EXT_WORKERS": "1",
                "EXT_REGISTRY_DB": str(work / "unused.db"), "EXT_SECRETS_KEY_FILE": str(work / "unused.key")})
    proc, base = start_gunicorn(env, work / "server.log")
    yield base, f"sha256:{digest}", alga
    stop_process(proc)
    alga.close()
    moto.stop()


def context(content_hash: str, request_id: str, **extra) -> dict:
    return {"request_id": request_id, "tenant_id": TENANT, "extension_id": REGISTRY, "install_id": INSTALL,
            "content_hash": content_hash, "version_id": VERSION, **extra}


def post(base: str, headers: dict, doc: dict) -> dict:
    r = requests.post(f"{base}/v1/execute", data=json.dumps(doc), headers={**headers, **UNDICI}, timeout=120)
    assert r.status_code == 200, r.text
    envelope = r.json()
    assert set(envelope) == {"status", "headers", "body_b64", "error"} and envelope["error"] is None, envelope
    assert envelope["status"] == 200
    return json.loads(base64.b64decode(envelope["body_b64"]))


def call_body(iface: str, fn: str) -> str:
    return base64.b64encode(json.dumps({"iface": iface, "fn": fn, "args": []}).encode()).decode()


def test_main_gateway(runner):
    """``/api/ext/{id}/...``: no token, x-idempotency-key = the request id, user with company_name."""
    base, content_hash, _ = runner
    rid = "1d3c9a2e-4b5f-4c6d-9e7f-8a9b0c1d2e3f"
    headers = {"content-type": "application/json", "x-request-id": rid, "x-alga-tenant": TENANT,
               "x-alga-extension": REGISTRY, "x-idempotency-key": rid}
    doc = {"context": context(content_hash, rid, config={"greeting": "hello", "max_items": "5"}),
           "http": {"method": "POST", "path": "/call", "query": {"verbose": "1"},
                    "headers": {**BROWSER_HEADERS, "x-alga-tenant": TENANT, "x-alga-extension": REGISTRY},
                    "body_b64": call_body("user", "get-user")},
           "limits": {"timeout_ms": 30000},
           "providers": ["cap:storage.kv", "cap:context.read", "cap:log.emit", "cap:user.read"],
           "secret_envelope": ENVELOPE,
           "user": {"user_id": USER_ID, "user_email": "ada@example.com", "user_name": "Ada Lovelace",
                    "company_name": "Acme MSP", "user_type": "internal"}}
    user = post(base, headers, doc)["ok"]
    assert (user["tenantId"], user["clientName"], user["userId"], user["userName"]) == (
        TENANT, "Acme MSP", USER_ID, "Ada Lovelace")
    # An empty non-GET body arrives as body_b64 "" (and a GET has none at all).
    doc["http"].update(method="DELETE", path="/dynamic/items/42", body_b64="")
    echoed = post(base, {**headers, "x-idempotency-key": "2f0e"}, doc)
    assert (echoed["method"], echoed["path"], echoed["echo"]) == ("DELETE", "/dynamic/items/42?verbose=1", [])
    doc["http"].update(method="GET", path="/dynamic/items")
    del doc["http"]["body_b64"], headers["x-idempotency-key"]
    assert post(base, headers, doc)["method"] == "GET"


def test_ext_proxy(runner):
    """The iframe bridge's route: x-runner-service-token and x-ext-*, http.url, endpoint, client_name."""
    base, content_hash, _ = runner
    rid = "2e4d0b3f-5c60-4d7e-8f80-9a0b1c2d3e4f"
    headers = {"content-type": "application/json", "x-request-id": rid, "x-runner-service-token": "local-runner-key",
               "x-alga-tenant": TENANT, "x-alga-extension": REGISTRY, "x-ext-install-id": INSTALL,
               "x-ext-version-id": VERSION, "x-ext-registry-id": REGISTRY,
               "x-ext-config-version": "8d7c6b5a-4f3e-4d2c-9b1a-0f9e8d7c6b5a",
               "x-ext-secrets-version": ENVELOPE["version"]}
    doc = {"context": context(content_hash, rid, config={"greeting": "hello"}),
           "http": {"method": "POST", "url": "/call", "path": "/call", "query": {},
                    "headers": {"accept": "*/*", "accept-encoding": "gzip, deflate, br, zstd",
                                "content-type": "application/octet-stream",
                                "user-agent": "Mozilla/5.0 (X11; Linux x86_64)", "x-request-id": rid,
                                "x-alga-tenant": TENANT, "x-alga-extension": REGISTRY,
                                "x-idempotency-key": "6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d"},
                    "body_b64": call_body("user-v2", "get-user")},
           "limits": {"timeout_ms": 30000},
           "providers": ["cap:storage.kv", "cap:context.read", "cap:log.emit", "cap:user.read"],
           "secret_envelope": ENVELOPE,
           "endpoint": "ui-proxy:/call",
           "user": {"user_id": USER_ID, "user_email": "ada@example.com", "user_name": "Ada Lovelace",
                    "user_type": "client", "client_name": "Acme MSP", "client_id": "d4c3b2a1-0f9e-4d8c-8b7a-6f5e4d3c2b1a",
                    "additional_fields": {"locale": "en-GB", "timezone": "Europe/London"}}}
    user = post(base, headers, doc)["ok"]
    assert (user["clientName"], user["clientId"], user["userType"]) == (
        "Acme MSP", "d4c3b2a1-0f9e-4d8c-8b7a-6f5e4d3c2b1a", "client")
    assert user["additionalFields"] == [["locale", "en-GB"], ["timezone", "Europe/London"]]
    doc["http"].update(method="GET", url="/dynamic/secrets", path="/dynamic/secrets")
    del doc["http"]["body_b64"], doc["http"]["headers"]["x-idempotency-key"]
    doc["providers"].append("cap:secrets.get")
    secrets = post(base, headers, doc)["secrets"]
    assert secrets["keys"] == ["api_key"]


def test_scheduled_job(runner):
    """Temporal's handler: x-idempotency-key = x-request-id, trigger + schedule_id, no user, no token."""
    base, content_hash, alga = runner
    rid = "4f6e2d1c-0b9a-4e8d-8c7b-6a5f4e3d2c1b"
    headers = {"content-type": "application/json", "x-request-id": rid, "x-idempotency-key": rid,
               "x-alga-tenant": TENANT, "x-alga-extension": REGISTRY}
    doc = {"context": context(content_hash, rid, config={}, trigger="schedule",
                              schedule_id="d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e5f6"),
           "http": {"method": "POST", "path": "/dynamic/echo", "query": {},
                    "headers": {"x-alga-tenant": TENANT, "x-alga-extension": REGISTRY},
                    "body_b64": base64.b64encode(b'{"reason":"nightly"}').decode()},
           "limits": {"timeout_ms": 30000},
           "providers": ["cap:scheduler.manage", "cap:log.emit", "cap:context.read", "cap:user.read"]}
    echoed = post(base, headers, doc)
    assert (echoed["tenantId"], echoed["extensionId"], bytes(echoed["echo"])) == (TENANT, REGISTRY,
                                                                                  b'{"reason":"nightly"}')
    # The host API reaches the stand-in Alga server with the storage token of .env.runner.
    doc["http"].update(path="/call", body_b64=base64.b64encode(json.dumps(
        {"iface": "scheduler", "fn": "list-schedules", "args": []}).encode()).decode())
    alga.replies[("scheduler", "list")] = (200, [])
    assert post(base, {**headers, "x-idempotency-key": "job-2"}, doc) == {"ok": []}
    assert alga.calls("scheduler")[-1][1]["x-runner-auth"] == "local-runner-key"
