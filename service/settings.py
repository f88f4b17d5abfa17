"""Settings of the HTTP service itself."""
from __future__ import annotations

from dataclasses import dataclass

from service.config import setting


@dataclass(frozen=True)
class ServiceSettings:
    port: int = setting("PORT", 8085, "Listen port (`make run`, gunicorn).")
    host: str = setting("HOST", "127.0.0.1", "Listen address; loopback by default (use 0.0.0.0 in containers).")
    log_level: str = setting("LOG_LEVEL", "info", "Log level of the JSON log lines.")
