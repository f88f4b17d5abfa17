"""Packing an extension folder into ``bundle.tar.zst`` (the layout of reference §7.2).

The bundle holds ``manifest.json``, ``dist/main.wasm`` (absent for UI-only
extensions) and the UI under ``ui/``. When the UI was built into ``ui/dist`` or
``dist/ui`` (as ``alga pack`` looks for), that folder becomes ``ui/``, unless
``ui.entry`` points into ``ui/dist`` itself.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from standalone import manifest as manifests
from storage.bundles.archive import write_bundle

DEFAULT_LEVEL = 3  # zstd level: 19 (what `alga pack` uses) takes ~8 s on a 13 MB component
SKIPPED_DIRS = {"node_modules", ".git", "__pycache__"}
PACK_OUTPUTS = ("dist/bundle.tar.zst", "dist/bundle.sha256")


class PackError(Exception):
    """The folder can not be packed; the message says what to do."""


@dataclass(frozen=True)
class Packed:
    manifest: manifests.Manifest
    path: Path
    hex: str
    size: int
    files: int
    has_component: bool

    @property
    def content_hash(self) -> str:
        return f"sha256:{self.hex}"


def pack(folder: str | Path, dest: str | Path, level: int = DEFAULT_LEVEL) -> Packed:
    """Validate ``folder``'s manifest and write its bundle to ``dest``.

    Raises :class:`standalone.manifest.ManifestError` or :class:`PackError`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PackError(f"{folder} is not a folder")
    manifest = manifests.load(folder)
    members = bundle_members(folder, manifest)
    digest = write_bundle(members, dest, level=level)
    dest = Path(dest)
    return Packed(manifest, dest, digest, dest.stat().st_size, len(members), "dist/main.wasm" in members)


def bundle_members(folder: Path, manifest: manifests.Manifest) -> dict[str, Path]:
    """Archive name -> source file."""
    members: dict[str, Path] = {"manifest.json": folder / "manifest.json"}
    wasm = folder / "dist" / "main.wasm"
    if wasm.is_file():
        members["dist/main.wasm"] = wasm
    elif manifest.endpoints:
        raise PackError(f"api.endpoints: the manifest declares endpoints but {wasm} is missing; "
                        "build the component first (npm run build)")
    ui_root = _ui_root(folder, manifest)
    if ui_root is not None:
        for path in _files(ui_root):
            members["ui/" + path.relative_to(ui_root).as_posix()] = path
    if manifest.ui_entry and _entry_name(manifest.ui_entry) not in members:
        raise PackError(f"ui.entry: {manifest.ui_entry} is not in the bundle; "
                        "put the UI under ui/ (or build it into ui/dist)")
    return members


def _ui_root(folder: Path, manifest: manifests.Manifest) -> Path | None:
    entry = _entry_name(manifest.ui_entry or "ui/index.html")
    if not entry.startswith("ui/dist/"):
        for built in (folder / "ui" / "dist", folder / "dist" / "ui"):
            if (built / "index.html").is_file():
                return built
    ui = folder / "ui"
    return ui if ui.is_dir() else None


def _entry_name(entry: str) -> str:
    entry = entry.strip().lstrip("./").lstrip("/")
    return entry if entry.startswith("ui/") else f"ui/{entry}"


def _files(root: Path) -> list[Path]:
    """Regular files under ``root``, skipping dependency folders and dotfiles."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith(".") or not path.is_file():
                continue
            found.append(path)
    return found
