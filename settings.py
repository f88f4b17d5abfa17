"""All configuration, read from the environment once: one typed, frozen group per package.

Every setting has the reference runner's name; ``RUNNER_``-prefixed aliases (the
seed guide's names) are accepted too (service/config.py). ``Settings.from_env``
takes overrides by attribute name (tests), each routed to the group that owns it.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Mapping

from runner.settings import RunnerSettings
from service import config
from service.settings import ServiceSettings
from standalone.settings import StandaloneSettings
from static_cache.settings import StaticSettings
from storage.alga.settings import AlgaSettings
from storage.bundles.settings import BundleSettings
from storage.registry.settings import RegistrySettings

# Variables of Alga's own environment that this service reads nowhere but that are not typos.
ALGA_ONLY = ("RUNNER_BASE_URL", "RUNNER_PUBLIC_BASE", "RUNNER_BACKEND", "RUNNER_DOCKER_HOST", "RUNNER_DOCKER_PORT")


@dataclass(frozen=True)
class Settings:
    service: ServiceSettings
    runner: RunnerSettings
    bundles: BundleSettings
    registry: RegistrySettings
    alga: AlgaSettings
    static: StaticSettings
    standalone: StandaloneSettings

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        environ = os.environ if environ is None else environ
        unknown = set(overrides) - set(_OWNER)
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        groups = {}
        for f in dataclasses.fields(cls):
            mine = {k: v for k, v in overrides.items() if _OWNER[k] == f.name}
            groups[f.name] = config.load(_GROUPS[f.name], environ, mine)
        return cls(**groups)


_GROUPS = {"service": ServiceSettings, "runner": RunnerSettings, "bundles": BundleSettings,
           "registry": RegistrySettings, "alga": AlgaSettings, "static": StaticSettings,
           "standalone": StandaloneSettings}
_OWNER: dict[str, str] = {}
for _group, _cls in _GROUPS.items():
    for _field in config.fields(_cls):
        assert _field.name not in _OWNER, f"setting {_field.name} is declared twice"
        _OWNER[_field.name] = _group


def known_names() -> set[str]:
    """Every variable some setting reads (with its aliases), and Alga's own that are not typos."""
    return {name for cls in _GROUPS.values() for f in config.fields(cls) for name in config.names(f)} | set(ALGA_ONLY)


def unknown_names(environ: Mapping[str, str]) -> list[str]:
    """``EXT_*``/``RUNNER_*`` variables nothing reads: most often a typo."""
    known = known_names()
    return sorted(n for n in environ if n.startswith(("EXT_", "RUNNER_")) and n not in known)


def markdown_table() -> str:
    """The README's configuration table, generated from the groups."""
    return config.markdown_table(_GROUPS.values())
