"""http.fetch with egress control (DECISIONS 4, reference §4.4).

From the SDK component against a real local HTTP server (loopback, so private
destinations are allowed in the apps that must succeed), the refusals, and
in-process checks of what a component cannot show: the connection goes to the
address that was checked, TLS keeps the name for SNI and the certificate, the
per-execution budget, timeouts.
"""
import base64
import datetime
import json
import socket
import ssl
import threading
import time

import pytest
from fakes import FakeServer, Guest, wire_bytes
from helpers import base_config, call_context, free_port

from app import service_of as svc
from runner.worker.host import http as host_http
from runner.worker.host.values import record
from runner.worker.wasm_compat import Err
from settings import Settings

CAP = ["cap:http.fetch"]


def handler(req):
    path = req.path
    if path == "/hello":
        return 200, [("content-type", "text/plain"), ("x-multi", "a"), ("x-multi", "b")], b"hello"
    if path.startswith("/echo"):
        return 200, {}, {"method": req.method, "path": req.path, "headers": req.headers,
                         "body": base64.b64encode(req.body).decode()}
    if path == "/redirect":
        return 302, [("location", "/hello")], b""
    if path.startswith("/big/"):
        return 200, [("content-type", "application/octet-stream")], b"x" * int(path.rsplit("/", 1)[1])
    if path.startswith("/chunked/"):  # no content-length: the cap must hold while reading
        n = int(path.rsplit("/", 1)[1])
        return 200, [("connection", "close"), ("transfer-encoding", "chunked")], \
            f"{n:x}\r\n".encode() + b"y" * n + b"\r\n0\r\n\r\n"
    if path == "/latin1":
        return 200, [("x-latin1", "caf\u00e9"), ("x-ok", "fine")], b""
    if path == "/slow":
        time.sleep(2)
        return 200, {}, b"late"
    return 404, {}, b"nope"


@pytest.fixture(scope="module")
def server():
    with FakeServer(handler) as s:
        yield s


def _app(shared_dirs, tmp_path_factory, **overrides):
    from app import create_app

    app = create_app({**base_config(shared_dirs, tmp_path_factory.mktemp("http")), "workers": 1, **overrides})
    app.testing = True
    return app


@pytest.fixture(scope="module")
def open_guest(shared_dirs, tmp_path_factory, sdk_wasm):
    """Allowlist names the loopback server, private destinations allowed, 1 KiB body cap."""
    app = _app(shared_dirs, tmp_path_factory, egress_allowlist=("localhost", "127.0.0.1"),
               egress_allow_private=True, egress_max_response_bytes=1024)
    yield Guest(app, sdk_wasm)
    svc(app).lifecycle.stop()


@pytest.fixture(scope="module")
def strict_guest(shared_dirs, tmp_path_factory, sdk_wasm):
    """Same allowlist, private destinations refused (the default)."""
    app = _app(shared_dirs, tmp_path_factory, egress_allowlist=("localhost", "127.0.0.1", "example.com"))
    yield Guest(app, sdk_wasm)
    svc(app).lifecycle.stop()


def req(url, method="GET", headers=(), body=None):
    return {"method": method, "url": url, "headers": [{"name": n, "value": v} for n, v in headers],
            "body": None if body is None else wire_bytes(body)}


def headers_of(response):
    return [(h["name"], h["value"]) for h in response["headers"]]


# -- from the component ---------------------------------------------------------------------

@pytest.mark.slow
def test_get_returns_status_headers_and_body(open_guest, server):
    out = open_guest.call("http", "fetch", req(f"http://127.0.0.1:{server.port}/hello"), providers=CAP)
    response = out["ok"]
    assert response["status"] == 200
    assert response["body"] == b"hello"
    hs = headers_of(response)
    assert ("content-type", "text/plain") in hs
    assert [v for n, v in hs if n == "x-multi"] == ["a", "b"]  # repeated headers stay separate entries


@pytest.mark.slow
def test_post_sends_method_headers_and_body(open_guest, server):
    out = open_guest.call("http", "fetch", req(f"http://localhost:{server.port}/echo?q=1", "POST",
                                               [("x-api", "k1"), ("content-type", "application/json"),
                                                ("host", "evil.example"), ("content-length", "999")],
                                               b'{"a":1}'), providers=CAP)
    echoed = json.loads(out["ok"]["body"])
    assert echoed["method"] == "POST" and echoed["path"] == "/echo?q=1"
    assert echoed["headers"]["x-api"] == "k1"
    assert echoed["headers"]["host"] == f"localhost:{server.port}"  # ours, not the guest's
    assert echoed["headers"]["content-length"] == "7"
    assert base64.b64decode(echoed["body"]) == b'{"a":1}'


@pytest.mark.slow
def test_redirect_is_returned_not_followed(open_guest, server):
    before = len(server.requests)
    out = open_guest.call("http", "fetch", req(f"http://127.0.0.1:{server.port}/redirect"), providers=CAP)
    assert out["ok"]["status"] == 302
    assert ("location", "/hello") in headers_of(out["ok"])
    assert [r.path for r in server.requests[before:]] == ["/redirect"]


@pytest.mark.slow
def test_body_cap(open_guest, server):
    base = f"http://127.0.0.1:{server.port}"
    assert open_guest.call("http", "fetch", req(f"{base}/big/1024"), providers=CAP)["ok"]["body"] == b"x" * 1024
    assert open_guest.call("http", "fetch", req(f"{base}/big/1025"), providers=CAP) == {"err": "internal"}
    assert open_guest.call("http", "fetch", req(f"{base}/chunked/4000"), providers=CAP) == {"err": "internal"}
    assert open_guest.call("http", "fetch", req(f"{base}/chunked/100"), providers=CAP)["ok"]["body"] == b"y" * 100


@pytest.mark.slow
def test_header_values_that_are_not_visible_ascii_become_empty(open_guest, server):
    out = open_guest.call("http", "fetch", req(f"http://127.0.0.1:{server.port}/latin1"), providers=CAP)
    hs = dict(headers_of(out["ok"]))
    assert hs["x-latin1"] == "" and hs["x-ok"] == "fine"


@pytest.mark.slow
def test_transport_errors(open_guest, server):
    closed = free_port()
    assert open_guest.call("http", "fetch", req(f"http://127.0.0.1:{closed}/"), providers=CAP) == {"err": "transport"}
    # TLS to a plain HTTP server
    assert open_guest.call("http", "fetch", req(f"https://127.0.0.1:{server.port}/hello"),
                           providers=CAP) == {"err": "transport"}


@pytest.mark.slow
def test_invalid_requests(open_guest, server):
    base = f"http://127.0.0.1:{server.port}"
    assert open_guest.call("http", "fetch", req("not a url"), providers=CAP) == {"err": "invalid-url"}
    assert open_guest.call("http", "fetch", req("/relative/path"), providers=CAP) == {"err": "invalid-url"}
    assert open_guest.call("http", "fetch", req("http:///nohost"), providers=CAP) == {"err": "invalid-url"}
    assert open_guest.call("http", "fetch", req(f"{base}/hello", "GE T"), providers=CAP) == {"err": "invalid-url"}
    assert open_guest.call("http", "fetch", req(f"{base}/hello", headers=[("bad name", "x")]),
                           providers=CAP) == {"err": "invalid-url"}
    assert open_guest.call("http", "fetch", req(f"{base}/hello", headers=[("x", "a\r\nb: c")]),
                           providers=CAP) == {"err": "invalid-url"}


@pytest.mark.slow
def test_refusals(strict_guest, server):
    port, before = server.port, len(server.requests)
    call = lambda url: strict_guest.call("http", "fetch", req(url), providers=CAP)  # noqa: E731
    assert strict_guest.call("http", "fetch", req(f"http://127.0.0.1:{port}/hello")) == {"err": "not-allowed"}  # no cap
    assert call("http://not-listed.test/") == {"err": "not-allowed"}               # host not listed
    assert call(f"http://localhost:{port}/hello") == {"err": "not-allowed"}        # name resolving to loopback
    assert call(f"http://127.0.0.1:{port}/hello") == {"err": "not-allowed"}        # IP literal, loopback
    assert call(f"http://[::ffff:127.0.0.1]:{port}/") == {"err": "not-allowed"}    # IPv4-mapped form
    assert call("http://169.254.169.254/latest/meta-data/") == {"err": "not-allowed"}
    assert call("file:///etc/passwd") == {"err": "not-allowed"}
    assert call("ftp://example.com/x") == {"err": "not-allowed"}
    assert len(server.requests) == before  # nothing reached the server


@pytest.mark.slow
def test_empty_allowlist_denies_all(make_app, sdk_wasm, server):
    guest = Guest(make_app(workers=1, egress_allow_private=True), sdk_wasm)
    assert guest.call("http", "fetch", req(f"http://127.0.0.1:{server.port}/hello"),
                      providers=CAP) == {"err": "not-allowed"}


# -- in process -----------------------------------------------------------------------------

def ctx_for(**settings):
    s = Settings.from_env({}, **{"egress_allowlist": ("*",), **settings})
    return call_context(s, request="r", grants={"cap:http.fetch"})


def fetch(ctx, url, method="GET", headers=(), body=None):
    return host_http.fetch(ctx, record(method=method, url=url, body=body,
                                       headers=[record(name=n, value=v) for n, v in headers]))


def test_connects_to_the_checked_address_only(server, monkeypatch):
    answers = [[(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", server.port))]]
    calls = []

    def fake_getaddrinfo(host, port, *args, **kwargs):
        calls.append(host)
        # A rebinding resolver: the first answer passes the check, later ones would not.
        return answers[0] if len(calls) == 1 else [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.9.9.9", port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    ctx = ctx_for(egress_allow_private=True)
    out = fetch(ctx, f"http://rebind.test:{server.port}/echo")
    assert calls == ["rebind.test"]
    assert json.loads(out.body)["headers"]["host"] == f"rebind.test:{server.port}"


def test_any_non_public_answer_refuses_the_name(monkeypatch):
    connects = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port))])
    monkeypatch.setattr(host_http._PinnedConnection, "connect", lambda self: connects.append(1))
    out = fetch(ctx_for(), "https://mixed.test/")
    assert isinstance(out, Err) and out.payload == "not-allowed"
    assert connects == []


def test_unresolvable_name_is_transport():
    out = fetch(ctx_for(), "http://no-such-host.invalid/")
    assert isinstance(out, Err) and out.payload == "transport"


def test_request_budget_per_execution(server):
    ctx = ctx_for(egress_allow_private=True, egress_max_requests=2)
    url = f"http://127.0.0.1:{server.port}/hello"
    assert fetch(ctx, url).status == 200
    assert fetch(ctx, url).status == 200
    out = fetch(ctx, url)
    assert isinstance(out, Err) and out.payload == "not-allowed"


def test_timeout_before_the_status_line_is_transport(server):
    ctx = ctx_for(egress_allow_private=True, egress_timeout_ms=300)
    started = time.monotonic()
    out = fetch(ctx, f"http://127.0.0.1:{server.port}/slow")
    assert isinstance(out, Err) and out.payload == "transport"
    assert time.monotonic() - started < 1.5


def test_execution_deadline_bounds_the_fetch(server):
    ctx = ctx_for(egress_allow_private=True)
    ctx.deadline = time.monotonic() + 0.3
    out = fetch(ctx, f"http://127.0.0.1:{server.port}/slow")
    assert isinstance(out, Err) and out.payload == "transport"


def test_userinfo_becomes_basic_auth(server):
    out = fetch(ctx_for(egress_allow_private=True), f"http://user:p%40ss@127.0.0.1:{server.port}/echo")
    assert json.loads(out.body)["headers"]["authorization"] == "Basic " + base64.b64encode(b"user:p@ss").decode()


def test_path_is_percent_encoded_like_a_url_parser_would(server):
    out = fetch(ctx_for(egress_allow_private=True), f"http://127.0.0.1:{server.port}/echo/a b/é?q=x y#frag")
    assert json.loads(out.body)["path"] == "/echo/a%20b/%C3%A9?q=x%20y"


def test_head_and_empty_bodies(server):
    out = fetch(ctx_for(egress_allow_private=True), f"http://127.0.0.1:{server.port}/hello", "HEAD")
    assert out.status == 200 and out.body == b""


def test_the_url_is_never_logged(server, caplog):
    caplog.set_level("INFO")
    fetch(ctx_for(egress_allow_private=True), f"http://127.0.0.1:{server.port}/echo?token=s3cr3t")
    fetch(ctx_for(), "http://127.0.0.1/x?token=s3cr3t")  # refused
    assert "s3cr3t" not in caplog.text


# -- TLS: SNI and certificate use the name, the socket goes to the checked address --------

def _certificates(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tls.test")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("tls.test")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    (tmp_path / "ca.pem").write_bytes(pem(ca))
    (tmp_path / "leaf.pem").write_bytes(pem(leaf) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return tmp_path / "ca.pem", tmp_path / "leaf.pem"


def test_https_keeps_the_name_for_sni_and_certificate(tmp_path, monkeypatch):
    ca, leaf = _certificates(tmp_path)
    seen_sni = []
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(leaf)
    server_ctx.sni_callback = lambda sock, name, ctx: seen_sni.append(name)
    client_ctx = ssl.create_default_context(cafile=str(ca))
    with FakeServer(lambda r: (200, {}, b"secure"), ssl_context=server_ctx) as tls:
        real = socket.getaddrinfo
        monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: (
            [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))] if host in ("tls.test", "other.test")
            else real(host, port, *a, **k)))
        ctx = ctx_for(egress_allow_private=True)
        ctx.host.tls = client_ctx  # the worker's TLS settings, trusting the test CA
        out = fetch(ctx, f"https://tls.test:{tls.port}/")
        assert out.status == 200 and out.body == b"secure"
        assert seen_sni == ["tls.test"]
        # the same address under a name the certificate does not cover fails verification
        wrong = fetch(ctx, f"https://other.test:{tls.port}/")
        assert isinstance(wrong, Err) and wrong.payload == "transport"


def test_concurrent_fetches_in_one_process(server):
    results = []

    def worker():
        results.append(fetch(ctx_for(egress_allow_private=True), f"http://127.0.0.1:{server.port}/hello").status)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert results == [200] * 8


def test_ipv6_loopback_literal_refused_without_private():
    out = fetch(ctx_for(), "http://[::1]:1/")
    assert isinstance(out, Err) and out.payload == "not-allowed"


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_host_header_omits_the_default_port(server, monkeypatch, scheme):
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))])
    # Whatever the scheme, talk plain HTTP to the fake server: only the request head matters here.
    monkeypatch.setattr(host_http._PinnedConnection, "connect",
                        lambda self: setattr(self, "sock", socket.create_connection(("127.0.0.1", server.port))))
    out = fetch(ctx_for(egress_allow_private=True), f"{scheme}://name.test/echo")
    assert json.loads(out.body)["headers"]["host"] == "name.test"
