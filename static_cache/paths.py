"""Sanitising the path tail of /ext-ui URLs (reference §3.1 step 7). Pure, stdlib only."""
from __future__ import annotations

import re

ALLOWED_EXTENSIONS = frozenset(("html", "js", "css", "json", "map", "svg", "png", "jpg", "jpeg", "webp",
                                "woff", "woff2"))


_REFUSED_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")  # control characters and backslash


def sanitize(tail: str) -> str | None:
    """The normalised relative path (``""`` is the root), or None when the tail must be refused.

    Empty segments collapse; ``.``/``..``, hidden segments, backslashes, control
    characters and a last segment whose extension is not allowlisted are refused.
    A last segment without a dot is a folder or client route and is allowed.
    """
    if tail.startswith("/") or _REFUSED_CHARS.search(tail):
        return None
    segments = [s for s in tail.split("/") if s]
    if any(s.startswith(".") for s in segments):  # covers "." and ".." too
        return None
    if segments and "." in segments[-1]:
        if segments[-1].rsplit(".", 1)[1].lower() not in ALLOWED_EXTENSIONS:
            return None
    return "/".join(segments)


def extension(path: str) -> str:
    """Lower-cased extension of the last segment, ``""`` when it has none."""
    last = path.rsplit("/", 1)[-1]
    return last.rsplit(".", 1)[1].lower() if "." in last else ""
