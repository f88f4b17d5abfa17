"""Pure helpers of the host page: the iframe URL, bootstrap sessions, theme tokens.

The iframe URL follows the Alga host's ``buildExtUiSrc``
(``server/src/lib/extensions/assets/url.shared.ts``, reference §3.5).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
from datetime import datetime, timezone
from urllib.parse import quote, quote_plus

SESSION_TTL_S = 15 * 60
MAX_CLIENT_PATH = 2048

# The iframe's sandbox attribute per EXT_UI_SANDBOX: "same-origin" is what Alga's docker host
# (DockerExtensionIframe) and its knative host render; "strict" gives the UI an opaque origin.
SANDBOXES = {
    "same-origin": "allow-scripts allow-same-origin allow-forms allow-popups",
    "strict": "allow-scripts",
}

# The map Alga's host posts as the payload of a ``theme`` message (and this page also puts in
# ``bootstrap.theme_tokens``): the same --alga-* names, per theme. The values are this page's own.
THEMES = {
    "light": {
        "--alga-primary": "#8a4dea",
        "--alga-primary-foreground": "#f6f0fe",
        "--alga-primary-light": "#d9c6fa",
        "--alga-primary-dark": "#7440c8",
        "--alga-primary-50": "#f6f0fe",
        "--alga-primary-100": "#ece1fd",
        "--alga-secondary": "#3ac3ee",
        "--alga-secondary-foreground": "#ecfbfe",
        "--alga-secondary-light": "#6fd6f5",
        "--alga-accent": "#f59331",
        "--alga-accent-foreground": "#fff5e8",
        "--alga-danger": "#e5484d",
        "--alga-danger-dark": "#c62f35",
        "--alga-fg": "#111827",
        "--alga-muted-fg": "#6b7280",
        "--alga-border": "#e5e7eb",
        "--alga-border-light": "#f0f1f4",
        "--alga-bg": "#ffffff",
        "--alga-card-bg": "#ffffff",
        "--alga-muted": "#f6f7f9",
        "--alga-row-even": "#f8f9fb",
        "--alga-row-odd": "#ffffff",
        "--alga-row-hover": "#f4eefe",
        "--alga-primary-soft": "#f6f0fe",
        "--alga-primary-soft-fg": "#6a38b8",
        "--alga-primary-soft-hover": "#ece1fd",
        "--alga-primary-border": "#c7a6f7",
        "--alga-success": "#1f9d55",
        "--alga-warning": "#e39b0b",
        "--alga-radius": "8px",
        "--alga-ring": "0 0% 0%",
    },
    "dark": {
        "--alga-primary": "#a57cf0",
        "--alga-primary-foreground": "#1b1230",
        "--alga-primary-light": "#4b3480",
        "--alga-primary-dark": "#c3a6f6",
        "--alga-primary-50": "#221836",
        "--alga-primary-100": "#2d2048",
        "--alga-secondary": "#4fc9ef",
        "--alga-secondary-foreground": "#0b2530",
        "--alga-secondary-light": "#2a7f9b",
        "--alga-accent": "#f5a04e",
        "--alga-accent-foreground": "#2d1a06",
        "--alga-danger": "#f87171",
        "--alga-danger-dark": "#fca5a5",
        "--alga-fg": "#e5e7eb",
        "--alga-muted-fg": "#9ca3af",
        "--alga-border": "#2e2e40",
        "--alga-border-light": "#26263a",
        "--alga-bg": "#161622",
        "--alga-card-bg": "#1c1c2b",
        "--alga-muted": "#1f1f2e",
        "--alga-row-even": "#1a1a28",
        "--alga-row-odd": "#161622",
        "--alga-row-hover": "#251d38",
        "--alga-primary-soft": "#221836",
        "--alga-primary-soft-fg": "#c9b0f8",
        "--alga-primary-soft-hover": "#2d2048",
        "--alga-primary-border": "#5b3f99",
        "--alga-success": "#34c77b",
        "--alga-warning": "#f2b53c",
        "--alga-radius": "8px",
        "--alga-ring": "0 0% 100%",
    },
}

_HASH = re.compile(r"sha256:[0-9a-f]{64}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def encode_uri_component(value: str) -> str:
    """JavaScript's ``encodeURIComponent``."""
    return quote(value, safe="!~*'()")


def _form_encode(value: str) -> str:
    """One value as ``URLSearchParams.toString()`` writes it (space as '+', only ``*-._`` kept)."""
    return quote_plus(value, safe="*").replace("~", "%7E")


def iframe_src(extension_id: str, content_hash: str, path: str = "/", tenant: str | None = None) -> str:
    """``/ext-ui/{id}/{sha256:hex}/index.html?path=...&tenant=...&extensionId=...``."""
    content_hash = content_hash.lower()
    if not _HASH.match(content_hash):
        raise ValueError(f"invalid content hash {content_hash!r}; expected sha256:<64 hex>")
    params = [("path", path or "/")]
    if tenant:
        params.append(("tenant", tenant))
    params.append(("extensionId", extension_id))
    query = "&".join(f"{k}={_form_encode(v)}" for k, v in params)
    return (f"/ext-ui/{encode_uri_component(extension_id)}/{encode_uri_component(content_hash)}"
            f"/index.html?{query}")


def client_path(raw: str | None) -> str:
    """The extension's own path (``navigation.path``): absolute, printable, bounded; else "/"."""
    if not raw or not raw.startswith("/") or len(raw) > MAX_CLIENT_PATH or _CONTROL.search(raw):
        return "/"
    return raw


def theme_css() -> str:
    """The themes as CSS: light on ``:root``, the others on ``:root[data-theme=<name>]``."""
    blocks = []
    for name, tokens in THEMES.items():
        selector = ":root" if name == "light" else f':root[data-theme="{name}"]'
        body = "".join(f"  {var}: {value};\n" for var, value in tokens.items())
        blocks.append(f"{selector} {{\n{body}}}\n")
    return "".join(blocks)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Short-lived bootstrap session tokens, HMAC-signed with a per-process secret.

    The token is ``<payload>.<signature>`` in base64url; the payload names the
    tenant, the extension and the expiry. A restart invalidates every token.
    """

    def __init__(self, secret: bytes | None = None, ttl_s: int = SESSION_TTL_S):
        self._secret = secret or os.urandom(32)
        self.ttl_s = ttl_s

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def issue(self, tenant: str, extension: str, now: float | None = None) -> dict[str, str]:
        """``{token, expires_at}`` as the bootstrap's ``payload.session``."""
        exp = int(now if now is not None else time.time()) + self.ttl_s
        claims = json.dumps({"tenant": tenant, "extension": extension, "exp": exp}, separators=(",", ":"))
        payload = _b64(claims.encode())
        expires_at = datetime.fromtimestamp(exp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"token": f"{payload}.{self._sign(payload)}", "expires_at": expires_at}

    def verify(self, token: str, now: float | None = None) -> dict | None:
        """The claims of a valid, unexpired token; else None."""
        payload, _, signature = token.partition(".")
        if not signature or not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            claims = json.loads(_unb64(payload))
        except ValueError:
            return None
        if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int):
            return None
        return claims if claims["exp"] > (now if now is not None else time.time()) else None
