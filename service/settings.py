"""Settings of the HTTP service itself."""
from __future__ import annotations

from dataclasses import dataclass

from service.config import setting
from service.logs import choice


@dataclass(frozen=True)
class ServiceSettings:
    port: int = setting("PORT", 8085, "Listen port (`make run`, gunicorn).")
    host: str = setting("HOST", "127.0.0.1", "Listen address; loopback by default (use 0.0.0.0 in containers).")
    log_level: str = setting("LOG_LEVEL", "info", "Log level (trace, debug, info, warn, error).")
    log_format: str = setting(
        "LOG_FORMAT", "auto", "Log lines: `auto` (readable text when stderr is a terminal, else JSON lines), "
        "`json` or `text`; Gunicorn's own lines too.", parse=choice)
