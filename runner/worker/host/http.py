"""alga:extension/http: ``fetch`` with egress control (DECISIONS 4, reference §4.4).

Order of checks: capability, per-execution request budget, URL, scheme,
method, headers, allowlist (runner/policy/egress.py), one DNS resolution, address
policy. The connection then goes to the address that was checked (the Host
header and the TLS SNI/certificate check still use the name), so a second DNS
answer can never redirect it. Redirects come back to the guest as they are. The response body
is capped at ``EXT_EGRESS_MAX_RESPONSE_BYTES`` and the whole call at
``EXT_EGRESS_TIMEOUT_MS`` (never past the execution's deadline).

Errors: ``not-allowed`` (capability, budget, scheme, allowlist, address),
``invalid-url`` (URL, method or header that cannot be sent), ``transport``
(DNS, connect, TLS, no valid HTTP answer, timeout before the status line),
``internal`` (reading the body failed, timed out or exceeded the cap).
"""
from __future__ import annotations

import base64
import concurrent.futures
import http.client
import ipaddress
import logging
import re
import socket
import ssl
import time
from urllib.parse import quote, unquote, urlsplit

from runner.policy import egress
from runner.worker.host.call import CallContext
from runner.worker.host.values import get, record
from runner.worker.wasm_compat import Err

log = logging.getLogger("runner.worker.host.http")

CAP = "cap:http.fetch"
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # an RFC 9110 token (methods and header names)
_BAD_VALUE = re.compile(r"[\r\n\x00]")
_PATH_SAFE = "!$%&'()*+,-./:;=?@[]^_`{|}~"
# Framing headers are ours to write; the guest's copies would contradict the body we send.
_DROPPED_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}
_CHUNK = 64 << 10


class Refused(Exception):
    """A fetch that ends with an http-error value (``code``) and a reason for the log."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code


def fetch(ctx: CallContext, request):
    if not ctx.allows(CAP):
        return Err("not-allowed")
    started = time.monotonic()
    url = get(request, "url") or ""
    try:
        response = _fetch(ctx, request, url)
    except Refused as e:
        log.warning("http.fetch refused (%s): %s", e.code, e, extra={**ctx.log_extra, "target": _where(url)})
        return Err(e.code)
    log.info("http.fetch", extra={**ctx.log_extra, "target": _where(url), "method": get(request, "method"),
                                  "status": response.status, "bytes": len(response.body),
                                  "ms": round((time.monotonic() - started) * 1000, 1)})
    return response


def _fetch(ctx: CallContext, request, url: str):
    s = ctx.settings
    if ctx.fetches >= s.egress_max_requests:
        raise Refused("not-allowed", f"more than EXT_EGRESS_MAX_REQUESTS={s.egress_max_requests} fetches")
    ctx.fetches += 1

    target = _parse_url(url)
    method = get(request, "method") or ""
    if not _TOKEN.match(method):
        raise Refused("invalid-url", "method is not an HTTP token")
    headers = [(get(h, "name"), get(h, "value")) for h in get(request, "headers") or []]
    if not all(_TOKEN.match(n) and not _BAD_VALUE.search(v) for n, v in headers):
        raise Refused("invalid-url", "a header name is not a token or a value has CR, LF or NUL")
    if not ctx.host.egress.allows(target.scheme, target.host, target.port):
        raise Refused("not-allowed", f"{target.host}:{target.port} is not in EXT_EGRESS_ALLOWLIST")

    deadline = time.monotonic() + ctx.remaining(s.egress_timeout_ms / 1000)
    addresses = _resolve(ctx.host.dns, target.host, target.port, deadline)
    if not s.egress_allow_private:
        refused = [str(a) for a in addresses if not egress.allows_address(a)]
        if refused:
            raise Refused("not-allowed", f"{target.host} resolves to non-public {', '.join(refused)} "
                                         "(EXT_EGRESS_ALLOW_PRIVATE is off)")

    if target.userinfo and not any(n.lower() == "authorization" for n, _ in headers):
        headers.append(("Authorization", "Basic " + base64.b64encode(target.userinfo.encode()).decode()))
    return _exchange(target, addresses, method, headers, get(request, "body"), deadline,
                     s.egress_max_response_bytes, ctx.host.tls)


class _Target:
    __slots__ = ("scheme", "host", "port", "path", "userinfo")

    def __init__(self, scheme, host, port, path, userinfo):
        self.scheme, self.host, self.port, self.path, self.userinfo = scheme, host, port, path, userinfo


def _parse_url(url: str) -> _Target:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
        raw_host = parts.hostname
    except ValueError:
        raise Refused("invalid-url", "URL does not parse") from None
    if not parts.scheme:
        raise Refused("invalid-url", "URL is not absolute")
    scheme = parts.scheme.lower()
    if scheme not in egress.SCHEMES:
        raise Refused("not-allowed", f"scheme {scheme!r} (only http and https)")
    if not raw_host:
        raise Refused("invalid-url", "URL has no host")
    try:
        host = egress.normalize_host(raw_host)
    except (ValueError, UnicodeError):
        raise Refused("invalid-url", "host name cannot be encoded") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    path = quote(path, safe=_PATH_SAFE)  # spaces, quotes, controls, non-ASCII: percent-encoded as URL parsers do
    userinfo = None
    if parts.username is not None:
        userinfo = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return _Target(scheme, host, port or egress.SCHEMES[scheme], path, userinfo)


def _resolve(dns: concurrent.futures.Executor, host: str, port: int, deadline: float) -> list:
    """Every address ``host`` resolves to, in resolver order (IP literals as they are)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    future = dns.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=max(0.01, deadline - time.monotonic()))
    except concurrent.futures.TimeoutError:
        raise Refused("transport", f"resolving {host} timed out") from None
    except OSError as e:
        raise Refused("transport", f"resolving {host} failed: {e}") from None
    addresses = []
    for family, _, _, _, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = ipaddress.ip_address(sockaddr[0])  # keeps an IPv6 scope ("fe80::1%eth0")
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise Refused("transport", f"{host} has no address")
    return addresses


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to pre-checked addresses; Host and SNI stay the URL's name."""

    def __init__(self, target: _Target, addresses: list, deadline: float, tls: ssl.SSLContext):
        super().__init__(target.host, target.port, timeout=max(0.01, deadline - time.monotonic()))
        self._addresses = addresses
        self._tls = tls if target.scheme == "https" else None
        if self._tls:
            self.default_port = http.client.HTTPS_PORT  # so the Host header omits ":443"
        self._deadline = deadline

    def connect(self) -> None:
        error: OSError = OSError("no address")
        for ip in self._addresses:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("deadline passed while connecting")
            sock = socket.socket(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.settimeout(left)
                sock.connect((str(ip), self.port))  # a numeric address: no second DNS lookup
                break
            except OSError as e:
                sock.close()
                error = e
        else:
            raise error
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls:
            try:
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
            except BaseException:
                sock.close()
                raise
        self.sock = sock


def _exchange(target: _Target, addresses: list, method: str, headers: list, body, deadline: float,
              max_bytes: int, tls: ssl.SSLContext):
    conn = _PinnedConnection(target, addresses, deadline, tls)
    try:
        try:
            conn.putrequest(method, target.path, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() not in _DROPPED_HEADERS:
                    conn.putheader(name, value)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
        except ValueError as e:  # http.client refuses control characters and bad header names
            raise Refused("invalid-url", f"request cannot be sent: {e}") from None
        try:
            conn.endheaders(bytes(body) if body is not None else None)
            response = conn.getresponse()
        except (OSError, http.client.HTTPException, ssl.SSLError) as e:
            raise Refused("transport", f"{type(e).__name__}: {e}") from None
        declared = response.getheader("content-length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise Refused("internal", f"response body of {declared} bytes exceeds "
                                      f"EXT_EGRESS_MAX_RESPONSE_BYTES={max_bytes}")
        data = _read_body(conn, response, deadline, max_bytes)
        return record(status=response.status,
                      headers=[record(name=n.lower(), value=v if _visible(v) else "")
                               for n, v in response.getheaders()],
                      body=data)
    finally:
        conn.close()


def _read_body(conn, response, deadline: float, max_bytes: int) -> bytes:
    chunks, size = [], 0
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Refused("internal", "timed out reading the response body")
            if conn.sock is not None:
                conn.sock.settimeout(left)
            chunk = response.read1(_CHUNK) if hasattr(response, "read1") else response.read(_CHUNK)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > max_bytes:
                raise Refused("internal", f"response body exceeds EXT_EGRESS_MAX_RESPONSE_BYTES={max_bytes}")
            chunks.append(chunk)
    except (OSError, http.client.HTTPException, ssl.SSLError) as e:
        raise Refused("internal", f"reading the response body failed: {type(e).__name__}") from None


def _visible(value: str) -> bool:
    return all(c == "\t" or " " <= c <= "~" for c in value)


def _where(url: str) -> str:
    """scheme://host:port of a URL for logs (paths and queries may carry secrets)."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}"
    except ValueError:
        return "<unparsable>"


INTERFACES = {"alga:extension/http": {"fetch": fetch}}
