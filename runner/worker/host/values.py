"""Building and reading WIT records (wasmtime-py uses kebab-case attribute names)."""
from __future__ import annotations

from typing import Any

from wasmtime.component import Record


def record(**fields: Any) -> Record:
    """``record(tenant_id="t")`` -> a Record with attribute ``tenant-id``."""
    r = Record()
    for name, value in fields.items():
        setattr(r, name.replace("_", "-"), value)
    return r


def get(rec: Any, name: str, default: Any = None) -> Any:
    """Read field ``name`` (snake_case) of a Record received from the guest."""
    return getattr(rec, name.replace("_", "-"), default)
