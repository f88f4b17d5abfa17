"""Local fake servers for tests: a generic HTTP server, the Alga internal API, Vault transit.

Every server listens on 127.0.0.1 on a free port in a daemon thread, records
the requests it got (``server.requests``) and is used as a context manager or
closed with ``close()``.
"""
from __future__ import annotations

import base64
import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

from app import service_of as svc


@dataclass
class Request:
    method: str
    path: str          # path + query as received
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Reply = tuple  # (status, headers: list[(name, value)] | dict, body: bytes | str | dict | list | None)


class FakeServer:
    """``handler(Request) -> (status, headers, body)``; a JSON-able body is sent as application/json."""

    def __init__(self, handler: Callable[[Request], Reply], host: str = "127.0.0.1", ssl_context=None):
        self.handler = handler
        self.requests: list[Request] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                outer.requests.append(req)
                status, headers, payload = outer.handler(req)
                if isinstance(payload, (dict, list)):
                    payload = json.dumps(payload).encode()
                    headers = [("content-type", "application/json"), *_pairs(headers)]
                elif isinstance(payload, str):
                    payload = payload.encode()
                payload = payload or b""
                self.send_response(status)
                names = set()
                for name, value in _pairs(headers):
                    names.add(name.lower())
                    self.send_header(name, value)
                if "content-length" not in names and "transfer-encoding" not in names:
                    self.send_header("content-length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

            def log_message(self, *args):
                pass

        self.server = _QuietServer((host, 0), Handler)
        if ssl_context is not None:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that hung up (timeout tests) is not an error worth printing


def _pairs(headers) -> list[tuple[str, str]]:
    if not headers:
        return []
    return list(headers.items()) if isinstance(headers, dict) else list(headers)


class _Fake:
    """A fake service answering on its own FakeServer through ``handle``."""

    server: FakeServer

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def requests(self) -> list[Request]:
        return self.server.requests

    def close(self):
        self.server.close()


# -- the Alga server's internal extension API ----------------------------------------------

@dataclass
class FakeAlga(_Fake):
    """``/api/internal/ext-{storage,scheduler,invoicing,clients,services}/install/{id}``.

    Storage behaves like the server (revisions, 409 on ``ifRevision`` mismatch,
    404 for a missing key, ``{"success": false}`` when deleting a missing key).
    The other areas answer from ``replies[(area, operation)]``: a ``(status, body)``
    tuple or a callable taking the request JSON. Requests without the right
    ``x-runner-auth`` get 401.
    """

    token: str = "runner-token"
    replies: dict[tuple[str, str], Any] = field(default_factory=dict)
    kv: dict[tuple[str, str, str], dict] = field(default_factory=dict)

    def __post_init__(self):
        self.server = FakeServer(self.handle)

    def calls(self, area: str) -> list[tuple[str, dict, dict]]:
        """(install id, headers, JSON body) of every call to ``area``."""
        out = []
        for r in self.requests:
            parts = urlsplit(r.path).path.split("/")
            if len(parts) >= 6 and parts[3] == f"ext-{area}":
                out.append((unquote(parts[5]), r.headers, r.json()))
        return out

    def handle(self, req: Request) -> Reply:
        parts = urlsplit(req.path).path.split("/")
        if req.method != "POST" or len(parts) != 6 or parts[1:3] != ["api", "internal"] or parts[4] != "install":
            return 404, {}, {"error": "not found"}
        if req.headers.get("x-runner-auth") != self.token:
            return 401, {}, {"error": "Invalid runner token", "code": "UNAUTHORIZED"}
        area, install = parts[3].removeprefix("ext-"), unquote(parts[5])
        body = req.json()
        reply = self.replies.get((area, body.get("operation")))
        if reply is not None:
            status, payload = reply(body) if callable(reply) else reply
            return status, {}, payload
        if area == "storage":
            return self.storage(install, body)
        return 500, {}, {"error": "no canned reply", "area": area, "operation": body.get("operation")}

    def storage(self, install: str, body: dict) -> Reply:
        op, ns, key = body["operation"], body.get("namespace"), body.get("key")
        if not ns or len(ns) > 128 or (op != "list" and (not key or len(key) > 256 or "/" in key)):
            return 400, {}, {"error": "Validation error"}
        slot = (install, ns, key)
        if op == "get":
            row = self.kv.get(slot)
            if row is None:
                return 404, {}, {"error": "record not found", "code": "NOT_FOUND"}
            return 200, {}, {"namespace": ns, "key": key, **row}
        if op == "put":
            row = self.kv.get(slot)
            if "ifRevision" in body and (row is None or row["revision"] != body["ifRevision"]):
                return 409, {}, {"error": "ifRevision did not match stored revision", "code": "REVISION_MISMATCH"}
            revision = row["revision"] + 1 if row else 1
            self.kv[slot] = {"value": body.get("value"), "metadata": body.get("metadata") or {}, "revision": revision}
            return 200, {}, {"namespace": ns, "key": key, "revision": revision}
        if op == "delete":
            return 200, {}, {"success": self.kv.pop(slot, None) is not None}
        if op == "list":
            keys = sorted(k for (i, n, k) in self.kv if (i, n) == (install, ns))
            items = [{"namespace": ns, "key": k, **self.kv[(install, ns, k)]} for k in keys][:25]
            return 200, {}, {"items": items, "nextCursor": None}
        return 400, {}, {"error": "Unsupported operation"}


# -- Vault transit --------------------------------------------------------------------------

class FakeVault(_Fake):
    """``POST /v1/{mount}/decrypt/{key}`` answering ``{"data": {"plaintext": base64}}``.

    ``encrypt(mapping, mount, key)`` registers a ciphertext (``vault:v1:<id>``)
    whose plaintext is the JSON of ``mapping``; only that mount/key can open it.
    """

    def __init__(self, token: str = "vault-token", namespace: str | None = None):
        self.token = token
        self.namespace = namespace
        self.plaintexts: dict[tuple[str, str, str], bytes] = {}
        self.server = FakeServer(self.handle)

    def encrypt(self, mapping: Any, mount: str = "transit", key: str = "alga-ext", raw: bytes | None = None) -> str:
        ciphertext = f"vault:v1:{uuid.uuid4().hex}"
        self.plaintexts[(mount, key, ciphertext)] = raw if raw is not None else json.dumps(mapping).encode()
        return ciphertext

    def handle(self, req: Request) -> Reply:
        if req.headers.get("x-vault-token") != self.token:
            return 403, {}, {"errors": ["permission denied"]}
        if self.namespace is not None and req.headers.get("x-vault-namespace") != self.namespace:
            return 403, {}, {"errors": ["wrong namespace"]}
        parts = urlsplit(req.path).path.split("/")
        if req.method != "POST" or len(parts) < 5 or parts[1] != "v1" or parts[-2] != "decrypt":
            return 404, {}, {"errors": []}
        mount, key = "/".join(parts[2:-2]), parts[-1]
        plaintext = self.plaintexts.get((mount, key, req.json().get("ciphertext")))
        if plaintext is None:
            return 400, {}, {"errors": ["cipher: message authentication failed"]}
        return 200, {}, {"data": {"plaintext": base64.b64encode(plaintext).decode()}}


# -- driving the SDK fixture's /call route -------------------------------------------------

def wire_bytes(data: bytes) -> dict:
    """list<u8> in the fixture's JSON convention."""
    return {"$bytes": base64.b64encode(data).decode()}


def u64(n: int) -> dict:
    return {"$u64": str(n)}


def unwire(value: Any) -> Any:
    """The fixture's JSON back to Python: ``{"$bytes"}`` -> bytes, ``{"$u64"}`` -> int."""
    if isinstance(value, list):
        return [unwire(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return base64.b64decode(value["$bytes"])
        if set(value) == {"$u64"}:
            return int(value["$u64"])
        return {k: unwire(v) for k, v in value.items()}
    return value


class Guest:
    """The SDK fixture (tests/fixtures/guests/sdk.wasm) published into ``app``'s bundle store.

    ``guest.call("storage", "get", "ns", "k", providers=[...])`` -> ``{"ok": ...}`` /
    ``{"err": ...}`` / ``{"trap": ...}`` with bytes and u64 values decoded.
    """

    def __init__(self, app, sdk_wasm: bytes, tenant: str = "tenant-a", extension: str = "ext-a"):
        from helpers import publish

        self.tenant, self.extension = tenant, extension
        store = svc(app).settings.bundles.bundle_store_base
        self.hash = publish(store, tenant, extension, {"dist/main.wasm": sdk_wasm, "manifest.json": b"{}"})
        self.client = app.test_client()

    def execute(self, path: str, body: bytes | None = None, **extra) -> dict:
        from helpers import execute_body, post_execute

        doc = execute_body(self.hash, path=path, body=body, tenant=self.tenant, extension=self.extension, **extra)
        response = post_execute(self.client, doc, tenant=self.tenant, extension=self.extension)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    def call(self, iface: str, fn: str, *args, providers=(), **extra) -> dict:
        from helpers import decoded_body

        spec = {"iface": iface, "fn": fn, "args": list(args)}
        out = self.execute("/call", json.dumps(spec).encode(), providers=list(providers), **extra)
        assert out["error"] is None, out["error"]
        return unwire(decoded_body(out))
