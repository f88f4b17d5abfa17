"""alga:extension/logging: guest log lines, with the execution's ids attached."""
from __future__ import annotations

from runner.worker.host.call import CallContext


def _logger(level: str):
    def log(ctx: CallContext, message: str) -> None:
        if ctx.allows("cap:log.emit"):
            ctx.emit(level, "log", message)
    log.__name__ = f"log_{level}"
    return log


INTERFACES = {
    "alga:extension/logging": {f"log-{level}": _logger(level) for level in ("info", "warn", "error")},
}
