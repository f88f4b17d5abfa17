"""Capability names and grants (reference §2.7, §4.0). Pure, stdlib only."""
from __future__ import annotations

from typing import Iterable

KNOWN = frozenset({
    "cap:context.read", "cap:secrets.get", "cap:http.fetch", "cap:storage.kv", "cap:log.emit", "cap:ui.proxy",
    "cap:user.read", "cap:scheduler.manage", "cap:invoice.manual.create", "cap:client.read", "cap:service.read",
})
DEFAULTS = frozenset({"cap:context.read", "cap:log.emit", "cap:user.read"})


class UnknownCapabilities(Exception):
    def __init__(self, names: list[str]):
        super().__init__(", ".join(names))
        self.names = names


def normalize(names: Iterable[str]) -> set[str]:
    """Trimmed, lower-cased, empties dropped."""
    return {n.strip().lower() for n in names if n and n.strip()}


def grants(providers: Iterable[str]) -> frozenset[str]:
    """The granted set: the providers plus the defaults; unknown names are refused."""
    granted = normalize(providers) | DEFAULTS
    unknown = sorted(granted - KNOWN)
    if unknown:
        raise UnknownCapabilities(unknown)
    return frozenset(granted)


def known_only(names: Iterable[str]) -> set[str]:
    """What the Alga gateway sends: unknown names silently dropped (reference §7.5)."""
    return normalize(names) & KNOWN
