"""Settings of standalone mode: the scheduler loop, the host page, the publish API and `make run`'s samples."""
from __future__ import annotations

from dataclasses import dataclass

from service.config import setting


@dataclass(frozen=True)
class StandaloneSettings:
    scheduler_enabled: bool = setting("EXT_SCHEDULER_ENABLED", True, "Run stored schedules (standalone mode).")
    scheduler_tick_ms: int = setting("EXT_SCHEDULER_TICK_MS", 1000, "How often the scheduler looks for due runs.")
    ui_bridge_any_origin: bool = setting(
        "EXT_UI_BRIDGE_ANY_ORIGIN", False,
        "Development only: the host page accepts bridge messages from any origin (the source check stays).")
    install_samples: bool = setting("EXT_INSTALL_SAMPLES", False, "Install the sample extensions at start.")
    publish_api_key: str = setting(
        "EXT_PUBLISH_API_KEY", "",
        "Key Alga's CLI sends (`alga extension publish --api-key`, x-api-key) to the publish API "
        "(/api/ext-bundles/*, /api/v1/extensions/*); unset = that API answers 403.")
