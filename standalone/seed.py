"""Seed data for the clients and services host interfaces (standalone mode).

A seed file is ``{"tenant": "...", "clients": [...], "services": [...]}`` (or a
list of them) with the item fields of reference §4.10 in camelCase. Seeding a
tenant replaces its rows, so a file can be edited and loaded again.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from standalone.manifest import FieldProblems
from storage.registry.catalogue import replace_seed
from storage.registry.installs import Registry, RegistryError

_SERVICE_ENUMS = {"itemKind": ("service", "product"), "billingMethod": ("fixed", "hourly", "usage")}


class SeedError(FieldProblems):
    """The seed file is not what ``flask ext seed`` takes."""


@dataclass(frozen=True)
class TenantSeed:
    tenant: str
    clients: list[dict]
    services: list[dict]


def parse(doc: Any, default_tenant: str) -> list[TenantSeed]:
    """Validate a seed document; every problem names its field (``[1].services[0].itemKind``)."""
    many = isinstance(doc, list)
    problems: list[tuple[str, str]] = []
    seeds = []
    for n, part in enumerate(doc if many else [doc]):
        where = f"[{n}]." if many else ""
        if not isinstance(part, dict):
            problems.append((where.rstrip(".") or "$", "must be an object {tenant, clients, services}"))
            continue
        for key in part.keys() - {"tenant", "clients", "services"}:
            problems.append((f"{where}{key}", "unknown field (allowed: tenant, clients, services)"))
        tenant = part.get("tenant") or default_tenant
        if not isinstance(tenant, str):
            problems.append((f"{where}tenant", "must be a string"))
        clients = _items(part, "clients", where, ("clientId", "clientName"), {}, problems)
        services = _items(part, "services", where, ("serviceId", "serviceName", "itemKind", "billingMethod"),
                          _SERVICE_ENUMS, problems)
        seeds.append(TenantSeed(tenant, clients, services))
    if problems:
        raise SeedError(problems)
    return seeds


def write(registry: Registry, seed: TenantSeed) -> None:
    """Replace the tenant's seed rows."""
    if registry.tenant(seed.tenant) is None:
        raise RegistryError(f"unknown tenant {seed.tenant!r}; create it with: flask ext tenants create {seed.tenant}")
    replace_seed(registry.db, seed.tenant, seed.clients, seed.services)


def _items(part: dict, name: str, where: str, required: tuple[str, ...], enums: dict, problems: list) -> list[dict]:
    items = part.get(name, [])
    if not isinstance(items, list):
        problems.append((f"{where}{name}", "must be an array"))
        return []
    seen = set()
    for i, item in enumerate(items):
        at = f"{where}{name}[{i}]"
        if not isinstance(item, dict):
            problems.append((at, "must be an object"))
            continue
        for key in required:
            value = item.get(key)
            if not isinstance(value, str) or not value.strip():
                problems.append((f"{at}.{key}", "is required and must be a non-empty string"))
            elif key in enums and value not in enums[key]:
                problems.append((f"{at}.{key}", f"must be one of {', '.join(enums[key])}"))
        item_id = item.get(required[0])
        if isinstance(item_id, str):
            if item_id in seen:
                problems.append((f"{at}.{required[0]}", "is used by an earlier item"))
            seen.add(item_id)
    return [item for item in items if isinstance(item, dict)]
