"""The UI index of one bundle: built once at extraction, loaded once per process.

``build(tree)`` runs inside the bundle's temporary folder before it is renamed into
the cache (BundleCache's ``on_extract``): it picks the UI root (DECISIONS 9), hashes
every file once, writes gzip and brotli copies of text assets when smaller, and
stores the result as ``ui-index.json``. ``load`` turns that file into ready
responders, so serving a request never hashes or stats a file. With compression
off (EXT_UI_COMPRESSION) neither writes nor serves the variants.
"""
from __future__ import annotations

import hashlib
import json
import os
import zlib
from pathlib import Path

import brotli

from static_cache.headers import etag
from static_cache.media_types import media_type
from static_cache.paths import extension
from static_cache.responders import StaticFile

INDEX_FILE = "ui-index.json"
PRECOMPRESSED = "precompressed"
COMPRESSIBLE = frozenset(("html", "js", "css", "json", "svg", "map"))
MIN_COMPRESS_BYTES = 256
KEEP_RATIO = 0.95  # a variant must save at least 5 %
BROTLI_MAX_QUALITY_BYTES = 1 << 20  # quality 11 is slow; larger files use quality 6
CHUNK = 1 << 16
VERSION = 1


class UiIndex:
    __slots__ = ("files", "fallback")

    def __init__(self, files: dict[str, StaticFile], fallback: str):
        self.files, self.fallback = files, fallback

    def find(self, rel: str) -> StaticFile | None:
        """The file for a sanitised path; SPA fallback only for the root and extension-less last segments."""
        found = self.files.get(rel) if rel else None
        if found is None and not extension(rel):
            found = self.files.get(self.fallback)
        return found


def _ui_root(tree: Path) -> tuple[str, str]:
    """(UI root relative to the tree, fallback file name): ``ui`` unless only manifest ``ui.entry`` names one."""
    if (tree / "ui" / "index.html").is_file():
        return "ui", "index.html"
    try:
        with open(tree / "bundle" / "manifest.json", encoding="utf-8") as f:
            entry = json.load(f)["ui"]["entry"]
    except (OSError, ValueError, KeyError, TypeError):
        return "ui", "index.html"
    if not isinstance(entry, str):
        return "ui", "index.html"
    while entry.startswith("./"):
        entry = entry[2:]
    segments = entry.split("/")
    if (len(segments) < 2 or segments[0] != "ui" or any(not s or s.startswith(".") for s in segments)
            or not (tree / entry).is_file()):
        return "ui", "index.html"
    return "/".join(segments[:-1]), segments[-1]


def build(tree: Path, compress: bool = True) -> None:
    """Index ``tree/<ui root>`` into ``tree/ui-index.json`` (atomically); ``compress``: write variants."""
    tree = Path(tree)
    root_rel, fallback = _ui_root(tree)
    root = tree / root_rel
    files = {}
    for dirpath, dirnames, names in os.walk(root):
        dirnames.sort()
        for name in sorted(names):
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            files[rel] = _index_file(full, tree / PRECOMPRESSED / rel if compress else None)
    doc = {"version": VERSION, "root": root_rel, "fallback": fallback, "files": files}
    tmp = tree / f"{INDEX_FILE}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, separators=(",", ":"))
    os.replace(tmp, tree / INDEX_FILE)


def _index_file(path: Path, variant_stem: Path | None) -> dict:
    size = path.stat().st_size
    digest = hashlib.sha256()
    if variant_stem is None or extension(path.name) not in COMPRESSIBLE or size < MIN_COMPRESS_BYTES:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
        return {"size": size, "sha256": digest.hexdigest()}
    variant_stem.parent.mkdir(parents=True, exist_ok=True)
    gz_path, br_path = Path(f"{variant_stem}.gz"), Path(f"{variant_stem}.br")
    gz = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip container
    br = brotli.Compressor(quality=11 if size <= BROTLI_MAX_QUALITY_BYTES else 6)
    with open(path, "rb") as f, open(gz_path, "wb") as gz_out, open(br_path, "wb") as br_out:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            gz_out.write(gz.compress(chunk))
            br_out.write(br.process(chunk))
        gz_out.write(gz.flush())
        br_out.write(br.finish())
    entry = {"size": size, "sha256": digest.hexdigest()}
    for key, variant in (("gz", gz_path), ("br", br_path)):
        n = variant.stat().st_size
        if n <= size * KEEP_RATIO:
            entry[key] = n
        else:
            variant.unlink()
    return entry


def load(tree: Path, csp: str, compress: bool = True) -> UiIndex:
    """Responders for every UI file of an extracted bundle; builds the index first if it is missing.

    ``compress`` False: the precompressed variants an index may list are not offered."""
    tree = Path(tree)
    try:
        with open(tree / INDEX_FILE, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:  # extracted without the static_cache hook (e.g. by a CLI command)
        build(tree, compress)
        with open(tree / INDEX_FILE, encoding="utf-8") as f:
            doc = json.load(f)
    root = tree / doc["root"]
    pre = tree / PRECOMPRESSED
    files = {}
    for rel, e in doc["files"].items():
        file_type = media_type(rel)
        variants = [(enc, f"{pre / rel}.{key}", e[key], etag(e["sha256"], key))
                    for enc, key in (("br", "br"), ("gzip", "gz")) if compress and key in e]
        variants.sort(key=lambda v: v[2])  # smallest first
        files[rel] = StaticFile(str(root / rel), e["size"], file_type, etag(e["sha256"]),
                                csp if file_type == "text/html" else None, variants)
    return UiIndex(files, doc["fallback"])
