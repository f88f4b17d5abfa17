"""``flask ext new``: a ready extension folder from ``standalone/templates/``.

``component``: a TypeScript handler on @alga-psa/extension-runtime built with pinned jco (package.json
and its lock), the runner's WIT, and an iframe UI that calls the handler through the host bridge.
``ui``: the UI alone (runtime ``ui-only``, nothing to build). Both build and install with no edits;
the generated manifest is validated before this returns.
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from standalone import manifest as manifests

TEMPLATES = Path(__file__).resolve().parent / "templates"
WIT = Path(__file__).resolve().parent.parent / "runner" / "wit" / "extension-runner.wit"
KINDS = ("component", "ui")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_RENAMED = {"gitignore": ".gitignore"}  # a dotfile in the templates would be skipped by packaging
CONTENT = "content.html"  # a template's part of the shared ui/index.html


class ScaffoldError(Exception):
    """The folder can not be created; the message says why."""


@dataclass(frozen=True)
class Scaffold:
    folder: Path
    name: str
    template: str
    files: list[str]


def create(folder: str | Path, name: str, template: str = "component", publisher: str = manifests.DEFAULT_PUBLISHER,
           label: str | None = None) -> Scaffold:
    if not _NAME.match(name) or ".." in name:
        raise ScaffoldError(f"{name!r} is not an extension name: use letters, digits, '.', '-' and '_' "
                            "(such as com.example.my-extension)")
    if template not in KINDS:
        raise ScaffoldError(f"unknown template {template!r} (choose {' or '.join(KINDS)})")
    if not publisher.strip():
        raise ScaffoldError("the publisher must not be empty")
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ScaffoldError(f"{folder} exists and is not an empty folder; choose another --dir")
    content = TEMPLATES / template / "ui" / CONTENT
    values = {"__CONTENT__": content.read_text(encoding="utf-8"),  # first: it holds placeholders too
              "__NAME__": name, "__PUBLISHER__": publisher.strip(), "__LABEL__": label or default_label(name),
              "__NPM_NAME__": npm_name(name)}
    written = []
    for source in (TEMPLATES / "shared", TEMPLATES / template):
        for path in sorted(p for p in source.rglob("*") if p.is_file() and p != content):
            rel = path.relative_to(source)
            target = folder / rel.parent / _RENAMED.get(rel.name, rel.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(_render(path.read_text(encoding="utf-8"), values, json_file=path.suffix == ".json"),
                              encoding="utf-8")
            written.append(target.relative_to(folder).as_posix())
    if template == "component":  # the WIT the runner implements, as the build reads it
        (folder / "wit").mkdir()
        shutil.copyfile(WIT, folder / "wit" / WIT.name)
        written.append(f"wit/{WIT.name}")
    manifests.load(folder)  # a template the validator refuses would be a bug here, not the user's
    return Scaffold(folder, name, template, sorted(written))


def default_label(name: str) -> str:
    """``com.acme.ticket-sync`` -> ``Ticket Sync``."""
    last = name.rsplit(".", 1)[-1]
    return " ".join(word.capitalize() for word in re.split(r"[-_]+", last) if word) or name


def npm_name(name: str) -> str:
    """A valid npm package name for ``name`` (lower case, no leading dot or underscore)."""
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).lstrip("._-")[:214] or "extension"


def _render(text: str, values: dict[str, str], json_file: bool) -> str:
    for placeholder, value in values.items():
        text = text.replace(placeholder, json.dumps(value)[1:-1] if json_file else value)
    return text
