"""Settings of the HTTP service itself, and where it listens.

The reference runner always binds ``0.0.0.0:$PORT`` (default 8080), which is right in its
container and exposes a developer's machine everywhere else. So the defaults depend on where
the service runs: inside a container (Docker, Podman, Kubernetes, Knative) they are the
reference's, ``0.0.0.0:8080``, so Alga's ``.env.runner`` (``PORT=8080``, no ``HOST``) works
unchanged; elsewhere ``127.0.0.1:8085``. ``HOST`` must be an address or a host name: Alga's
``compose.env`` sets ``HOST`` to its app's URL for other services, and such a value is
ignored with a warning instead of stopping the service.
"""
from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Mapping

from service.config import one_of, setting
from service.logs import FORMATS

# Files a container runtime leaves in the root filesystem: Docker, Podman.
CONTAINER_FILES = ("/.dockerenv", "/run/.containerenv")
# Variables set in containers: Podman and systemd-nspawn (`container`), Kubernetes, Knative.
CONTAINER_VARIABLES = ("container", "KUBERNETES_SERVICE_HOST", "K_SERVICE")
LOCAL_HOST, LOCAL_PORT = "127.0.0.1", 8085
CONTAINER_HOST, CONTAINER_PORT = "0.0.0.0", 8080

_HOST_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")


def in_container(environ: Mapping[str, str]) -> bool:
    return any(environ.get(n) for n in CONTAINER_VARIABLES) or any(os.path.exists(p) for p in CONTAINER_FILES)


def listen_address(raw: str) -> str:
    """An IP literal (IPv6 with or without brackets) or a host name; ValueError for anything else."""
    value = raw.strip()
    if "://" in value or "/" in value:
        raise ValueError("a URL, not a listen address")
    try:
        return str(ipaddress.ip_address(value.removeprefix("[").removesuffix("]")))
    except ValueError:
        pass
    if not _HOST_NAME.fullmatch(value):
        raise ValueError("not an IP address or host name")
    return value


@dataclass(frozen=True)
class ServiceSettings:
    port: int = setting("PORT", LOCAL_PORT, "Listen port (Gunicorn, `make run`).",
                        shown_default="8085; 8080 in a container",
                        default_from=lambda env: CONTAINER_PORT if in_container(env) else LOCAL_PORT)
    host: str = setting("HOST", LOCAL_HOST,
                        "Listen address. A value that is not an address or host name (Alga's compose.env sets "
                        "HOST to a URL) is ignored with a warning. `make run` passes 127.0.0.1.",
                        parse=listen_address, shown_default="127.0.0.1; 0.0.0.0 in a container",
                        default_from=lambda env: CONTAINER_HOST if in_container(env) else LOCAL_HOST)
    log_level: str = setting("LOG_LEVEL", "info", "Log level (trace, debug, info, warn, error).")
    log_format: str = setting(
        "LOG_FORMAT", "auto", "Log lines: `auto` (readable text when stderr is a terminal, else JSON lines), "
        "`json` or `text`; Gunicorn's own lines too.", parse=one_of(*FORMATS))

    @property
    def bind(self) -> str:
        """Gunicorn's ``bind`` (IPv6 literals in brackets)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
