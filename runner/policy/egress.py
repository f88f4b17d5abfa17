"""Egress policy for http.fetch (DECISIONS 4): which URLs and addresses a guest may reach.

Policy only: no sockets, no DNS, no wasmtime. ``runner/worker/host/http.py`` resolves
the host once, asks :func:`allows_address` about every address, and connects
to the one that was checked.

``EXT_EGRESS_ALLOWLIST`` entries (comma-separated, already lower-cased by
settings.py)::

    (empty)              nothing is allowed
    *                    every host
    example.com          example.com and all its subdomains
    *.example.com        subdomains of example.com only
    api.example.com:8443 that host (and subdomains) on port 8443 only
    https://example.com  only https
    https://*:443        every host, https on port 443 only
    203.0.113.7          that address only (IP literals never match names or suffixes)

An entry that cannot be parsed matches nothing (fail closed) and is logged
once. Only ``http`` and ``https`` exist; anything else is refused before the
list is consulted.
"""
from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Iterable, Union

log = logging.getLogger(__name__)

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

SCHEMES = {"http": 80, "https": 443}

# Ranges refused even where Python's ``is_global`` says otherwise (or may, depending on version).
_BLOCKED = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "::/128", "::1/128", "::ffff:0:0/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32",
    "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def allows_address(address: IPAddress | str) -> bool:
    """True when ``address`` is a public unicast address.

    Refuses loopback, private, link-local (``169.254.169.254`` included), CGNAT,
    multicast, reserved and documentation ranges, and IPv6 forms that embed
    such an IPv4 address (IPv4-mapped, NAT64, 6to4). Teredo is refused outright.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return False
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return allows_address(embedded)
    if any(ip in net for net in _BLOCKED if net.version == ip.version):
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def normalize_host(host: str) -> str:
    """Lower-case, no trailing dot, IDNA (punycode) for non-ASCII names, no IPv6 brackets.

    Raises ValueError for a name that cannot be encoded.
    """
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.rstrip(".")
    if not host:
        raise ValueError("empty host")
    if _ip(host) is None and not host.isascii():
        host = host.encode("idna").decode("ascii")
    return host


def _ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


@dataclass(frozen=True)
class Rule:
    """One parsed allowlist entry."""

    host: str                  # "" = any host
    subdomains_only: bool = False
    scheme: str | None = None  # None = http or https
    port: int | None = None    # None = any port

    def matches(self, scheme: str, host: str, port: int) -> bool:
        if self.scheme is not None and scheme != self.scheme:
            return False
        if self.port is not None and port != self.port:
            return False
        if not self.host:
            return True
        if _ip(host) is not None or _ip(self.host) is not None:
            return _ip(host) == _ip(self.host)
        if self.subdomains_only:
            return host.endswith("." + self.host)
        return host == self.host or host.endswith("." + self.host)


def parse_rule(entry: str) -> Rule:
    """Parse one entry; ValueError when it is not one of the documented forms."""
    text = entry.strip().lower()
    scheme = None
    if "://" in text:
        scheme, text = text.split("://", 1)
        if scheme == "*":
            scheme = None
        elif scheme not in SCHEMES:
            raise ValueError(f"unsupported scheme {scheme!r}")
    text = text.split("/", 1)[0]
    if not text:
        raise ValueError("no host")
    port = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError("unclosed [")
        if rest:
            if not rest.startswith(":"):
                raise ValueError("junk after ]")
            port = _port(rest[1:])
    elif text.count(":") == 1:
        host, raw_port = text.split(":")
        port = _port(raw_port)
    else:
        host = text  # a bare IPv6 literal, or no port
    if host == "*":
        return Rule("", scheme=scheme, port=port)
    subdomains_only = host.startswith("*.")
    if subdomains_only:
        host = host[2:]
    if "*" in host:
        raise ValueError("'*' is only allowed alone or as a leading '*.'")
    host = normalize_host(host)
    if subdomains_only and _ip(host) is not None:
        raise ValueError("'*.' cannot prefix an IP address")
    return Rule(host, subdomains_only, scheme, port)


def _port(raw: str) -> int | None:
    if raw == "*":
        return None
    port = int(raw)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} out of range")
    return port


class Policy:
    """The parsed allowlist. ``allows(scheme, host, port)`` with a normalized host."""

    def __init__(self, entries: Iterable[str]):
        self.rules: list[Rule] = []
        self.invalid: list[str] = []
        for entry in entries:
            if not entry.strip():
                continue
            try:
                self.rules.append(parse_rule(entry))
            except (ValueError, UnicodeError) as e:
                self.invalid.append(entry)
                log.warning("ignoring EXT_EGRESS_ALLOWLIST entry %r: %s", entry, e)

    def allows(self, scheme: str, host: str, port: int) -> bool:
        if scheme not in SCHEMES:
            return False
        return any(rule.matches(scheme, host, port) for rule in self.rules)

    def allows_host(self, host: str, scheme: str = "https", port: int | None = None) -> bool:
        """Convenience for callers holding a raw host name (normalized here)."""
        try:
            host = normalize_host(host)
        except (ValueError, UnicodeError):
            return False
        return self.allows(scheme, host, SCHEMES.get(scheme, 0) if port is None else port)


__all__ = ["Policy", "Rule", "allows_address", "normalize_host", "parse_rule", "SCHEMES"]
