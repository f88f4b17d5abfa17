"""What crosses the process boundary between the pool and a worker, as typed records. Stdlib only.

The pool sends :class:`WorkerConfig` once, then a :class:`Job` per execution; the worker
answers :class:`Ready` once, then a :class:`Reply` per job (runner/channel.py frames them).
The per-execution records pickle as their class and positional fields (``by_position``):
pickle's default for slotted dataclasses, a state dict set field by field, took twice as long.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

from runner.settings import RunnerSettings
from storage.alga.settings import AlgaSettings
from storage.registry.settings import RegistrySettings


def by_position(cls):
    """Class decorator (outside ``@dataclass``): pickle instances as ``cls(*fields)``."""
    fields = operator.attrgetter(*cls.__slots__)
    cls.__reduce__ = lambda self: (cls, fields(self))
    return cls


@by_position
@dataclass(frozen=True, slots=True)
class ExecutionIds:
    """The five ids of an execution, the one list of them: log lines, debug events, host calls."""

    tenant: str
    extension: str
    install: str | None = None
    request: str | None = None
    version: str | None = None

    def fields(self) -> dict[str, str]:
        """The known ids by name (``tenant``, ``extension``, ...), for log ``extra`` and debug events."""
        return {k: v for k in ("tenant", "extension", "install", "request", "version") if (v := getattr(self, k))}


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """What a worker needs of the settings: the runner's, and where host data lives."""

    runner: RunnerSettings
    alga: AlgaSettings
    registry: RegistrySettings
    log_level: str
    log_format: str = "json"  # resolved by the parent: a worker writes what the service writes


@by_position
@dataclass(frozen=True, slots=True)
class GuestRequest:
    """The ``http`` record handed to the guest's handler."""

    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes | None


@by_position
@dataclass(slots=True)
class Job:
    id: int  # set by the pool when it sends the job
    bundle: str  # content hash, hex
    artifact: str  # precompiled component path
    timeout_ms: int
    memory_mb: int
    fuel: int | None
    ids: ExecutionIds
    request: GuestRequest
    grants: frozenset[str]
    secrets: dict[str, str] | None  # None: the request carried no envelope
    user: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Ready:
    pid: int


OK = "ok"
ERROR = "error"
NEED_COMPILE = "need_compile"  # the artifact is missing or unusable: the pool compiles, then resends


@by_position
@dataclass(slots=True)
class Reply:
    id: int
    outcome: str  # OK, ERROR or NEED_COMPILE
    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None
    error: str | None = None  # "execute_failed: ..." when outcome is ERROR
    events: list[dict[str, Any]] = field(default_factory=list)  # guest log lines for the debug stream
    loaded: list[str] = field(default_factory=list)  # bundles the worker holds compiled, for affinity
