"""Settings of /ext-ui."""
from __future__ import annotations

from dataclasses import dataclass

from service.config import one_of, setting

COMPRESSION_CHOICES = ("auto", "on", "off")


@dataclass(frozen=True)
class StaticSettings:
    static_strict_validation: bool = setting("EXT_STATIC_STRICT_VALIDATION", True,
                                             "Require a tenant and a valid install for /ext-ui.")
    static_max_file_bytes: int | None = setting("EXT_STATIC_MAX_FILE_BYTES", None,
                                                "Largest served asset (413 above).")
    static_memory_bytes: int = setting("EXT_STATIC_MEMORY_BYTES", 64 << 20,
                                       "UI files up to 256 KiB are answered from memory, up to this many bytes "
                                       "per process (0 = always from disk).", shown_default="64 MiB")
    ui_csp: str = setting("EXT_UI_CONTENT_SECURITY_POLICY", "", "Replaces the HTML Content-Security-Policy.")
    ui_frame_ancestors: str = setting("EXT_UI_FRAME_ANCESTORS", "", "Appends frame-ancestors to the default CSP.")
    ui_compression: str = setting(
        "EXT_UI_COMPRESSION", "auto",
        "Precompressed br/gzip /ext-ui variants: `auto` = on in standalone mode, off when attached to an Alga "
        "server (its /runner proxy decodes them but keeps Content-Encoding); `on`; `off`.",
        parse=one_of(*COMPRESSION_CHOICES))

    def compress(self, attached: bool) -> bool:
        """Whether /ext-ui may answer with a Content-Encoding."""
        return self.ui_compression == "on" or (self.ui_compression == "auto" and not attached)
