"""CallContext: everything host functions may know about the current execution.

One is made per execution in the worker and travels as the Store's data, so
host code reads the request's state from the store it is called with.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from logs import LEVELS
from runner.capabilities import DEFAULTS
from settings import Settings

log = logging.getLogger("ext")



@dataclass
class CallContext:
    settings: Settings
    tenant_id: str
    extension_id: str
    request_id: str | None = None
    install_id: str | None = None
    version_id: str | None = None
    grants: frozenset[str] = DEFAULTS
    secrets: dict[str, str] | None = None  # None: the request carried no envelope
    user: dict[str, Any] | None = None
    deadline: float = field(default_factory=lambda: time.monotonic() + 30)
    events: list[dict[str, Any]] = field(default_factory=list)
    fetches: int = 0

    def allows(self, capability: str) -> bool:
        return capability in self.grants

    def remaining(self, cap_seconds: float) -> float:
        """Seconds a host call may still take: its own cap, but never past the deadline."""
        return max(0.05, min(cap_seconds, self.deadline - time.monotonic()))

    @property
    def ids(self) -> dict[str, Any]:
        """Context fields for log lines and debug events."""
        ids = {"tenant": self.tenant_id, "extension": self.extension_id, "install": self.install_id,
               "request": self.request_id, "version": self.version_id}
        return {k: v for k, v in ids.items() if v}

    def emit(self, level: str, stream: str, message: str) -> None:
        """A guest log line: written now as JSON, and kept for the debug stream."""
        log.log(LEVELS.get(level, logging.INFO), message, extra={"stream": stream, **self.ids})
        self.events.append({"ts": int(time.time() * 1000), "level": level, "stream": stream, "message": message})

