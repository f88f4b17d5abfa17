"""alga:extension/http (frame): refuses until egress control is implemented."""
from __future__ import annotations

from urllib.parse import urlsplit

from runner.host.call import CallContext
from runner.host.values import get
from runner.wasm_compat import Err


def fetch(ctx: CallContext, request):
    if not ctx.allows("cap:http.fetch"):
        return Err("not-allowed")
    parts = urlsplit(get(request, "url") or "")
    if not parts.scheme or not parts.netloc:
        return Err("invalid-url")
    return Err("not-allowed")


INTERFACES = {"alga:extension/http": {"fetch": fetch}}
