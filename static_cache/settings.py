"""Settings of /ext-ui."""
from __future__ import annotations

from dataclasses import dataclass

from service.config import setting


@dataclass(frozen=True)
class StaticSettings:
    static_strict_validation: bool = setting("EXT_STATIC_STRICT_VALIDATION", True,
                                             "Require a tenant and a valid install for /ext-ui.")
    static_max_file_bytes: int | None = setting("EXT_STATIC_MAX_FILE_BYTES", None,
                                                "Largest served asset (413 above).")
    ui_csp: str = setting("EXT_UI_CONTENT_SECURITY_POLICY", "", "Replaces the HTML Content-Security-Policy.")
    ui_frame_ancestors: str = setting("EXT_UI_FRAME_ANCESTORS", "", "Appends frame-ancestors to the default CSP.")
