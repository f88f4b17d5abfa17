"""Settings of standalone mode: the gateway, the scheduler loop, the host page, the publish API and
`make run`'s samples."""
from __future__ import annotations

from dataclasses import dataclass

from service.config import one_of, setting

SANDBOX_CHOICES = ("same-origin", "strict")


@dataclass(frozen=True)
class StandaloneSettings:
    scheduler_enabled: bool = setting("EXT_SCHEDULER_ENABLED", True, "Run stored schedules (standalone mode).")
    scheduler_tick_ms: int = setting("EXT_SCHEDULER_TICK_MS", 1000, "How often the scheduler looks for due runs.")
    ui_bridge_any_origin: bool = setting(
        "EXT_UI_BRIDGE_ANY_ORIGIN", False,
        "Development only: the host page accepts bridge messages from any origin (the source check stays).")
    ui_sandbox: str = setting(
        "EXT_UI_SANDBOX", "same-origin",
        "Host page iframe sandbox: `same-origin` = Alga's docker host (`allow-scripts allow-same-origin "
        "allow-forms allow-popups`: the UI shares the page's origin); `strict` = `allow-scripts` only "
        "(opaque origin; the UI cannot read the page or call /api/ext itself).",
        parse=one_of(*SANDBOX_CHOICES))
    install_samples: bool = setting("EXT_INSTALL_SAMPLES", False, "Install the sample extensions at start.")
    gateway_timeout_ms: int = setting(
        "EXT_GATEWAY_TIMEOUT_MS", 30000,
        "Standalone gateway and schedules: limits.timeout_ms of each call, and 502 bad_gateway after it "
        "(Alga's name and default).")
    publish_api_key: str = setting(
        "EXT_PUBLISH_API_KEY", "",
        "Key Alga's CLI sends (`alga extension publish --api-key`, x-api-key) to the publish API "
        "(/api/ext-bundles/*, /api/v1/extensions/*); unset = that API answers 403.")
