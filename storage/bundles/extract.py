"""Streamed, capped extraction of a bundle ``.tar.zst`` (reference §2.6, DECISIONS 11).

The archive is decoded a little at a time, so neither the archive nor a zstd bomb
is ever held in memory. Only regular files and directories are written; links and
devices are ignored; names follow the reference's path rules.
"""
from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import zstandard

from storage.bundles.settings import BundleSettings

READ_CHUNK = 1 << 16
# zstd can expand a few input bytes into a 128 KiB block, so input is fed in small
# slices: one slice yields at most ~32 MiB, whatever the archive holds.
FEED_SLICE = 1024
HEADER_ALLOWANCE = 4096  # decoded bytes allowed per member beyond its data (tar/pax headers, padding)


class ExtractError(Exception):
    """The archive is unreadable or breaks a limit; ``reason`` says which."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ExtractLimits:
    max_entries: int
    max_file_bytes: int
    max_total_bytes: int

    @classmethod
    def from_settings(cls, settings: BundleSettings) -> "ExtractLimits":
        return cls(settings.extract_max_entries, settings.extract_max_file_bytes, settings.extract_max_total_bytes)


@dataclass(frozen=True)
class ExtractResult:
    files: int
    bytes: int
    skipped: int


class _ZstdStream:
    """File-like zstd decoder with bounded output per step, a cap on decoded bytes, truncation detection."""

    def __init__(self, raw, limit: int):
        self._raw = raw
        self._limit = limit
        self._decoder = zstandard.ZstdDecompressor().decompressobj()
        self._fed = False
        self._pending = memoryview(b"")
        self._buf = bytearray()
        self._done = False
        self.decoded = 0

    def read(self, n: int = -1) -> bytes:
        while (n < 0 or len(self._buf) < n) and not self._done:
            self._step()
        n = len(self._buf) if n < 0 else n
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def _step(self) -> None:
        if self._decoder.eof:  # a frame ended; more input means another frame
            rest = self._decoder.unused_data + bytes(self._pending)
            self._pending = memoryview(rest)
            self._decoder = zstandard.ZstdDecompressor().decompressobj()
            self._fed = False
        if not self._pending:
            chunk = self._raw.read(READ_CHUNK)
            if not chunk:
                if self._fed and not self._decoder.eof:
                    raise ExtractError("truncated archive: the zstd frame ends early")
                self._done = True
                return
            self._pending = memoryview(chunk)
        piece, self._pending = self._pending[:FEED_SLICE], self._pending[FEED_SLICE:]
        try:
            out = self._decoder.decompress(piece)
        except zstandard.ZstdError as e:
            raise ExtractError(f"not a zstd archive: {e}") from None
        self._fed = True
        self.decoded += len(out)
        if self.decoded > self._limit:
            raise ExtractError(f"archive unpacks to more than {self._limit} bytes (EXT_EXTRACT_MAX_TOTAL_BYTES)")
        self._buf += out


def member_target(name: str) -> tuple[str, str] | None:
    """``("ui"|"bundle", relative path)`` for an archive name, or None when the reference rules skip it."""
    rel = name
    while rel.startswith("./"):
        rel = rel[2:]
    if not rel or rel.startswith("/") or ".." in rel or "\x00" in rel:  # no file can have a NUL in its name
        return None
    if any(not seg or seg.startswith(".") for seg in rel.split("/")):
        return None
    if rel == "ui":
        return None
    if rel.startswith("ui/"):
        return "ui", rel[3:]
    return "bundle", rel


def extract_bundle(archive_path: str | os.PathLike, dest_dir: str | os.PathLike,
                   limits: ExtractLimits) -> ExtractResult:
    """Unpack ``archive_path`` into ``dest_dir/ui`` and ``dest_dir/bundle``; files end up read-only (0444)."""
    dest = Path(dest_dir)
    roots = {"ui": dest / "ui", "bundle": dest / "bundle"}
    for root in roots.values():
        root.mkdir(parents=True, exist_ok=True)
    stream_cap = limits.max_total_bytes + (limits.max_entries + 1) * HEADER_ALLOWANCE
    with open(archive_path, "rb") as raw:
        stream = _ZstdStream(raw, stream_cap)
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                result = _extract_members(tar, roots, limits)
            while stream.read(READ_CHUNK):  # the rest (end blocks, padding) must decode cleanly too
                pass
        except tarfile.TarError as e:
            raise ExtractError(f"unreadable tar: {e}") from None
        except OSError as e:
            raise ExtractError(f"cannot write {e.filename or 'file'}: {e.strerror or e}") from None
    return result


def _extract_members(tar: tarfile.TarFile, roots: dict[str, Path], limits: ExtractLimits) -> ExtractResult:
    files = total = skipped = entries = 0
    for member in tar:
        entries += 1
        if entries > limits.max_entries:
            raise ExtractError(f"archive has more than {limits.max_entries} entries (EXT_EXTRACT_MAX_ENTRIES)")
        target = member_target(member.name)
        if target is None or not (member.isdir() or (member.isreg() and not member.issparse())):
            skipped += 1
            continue
        path = roots[target[0]].joinpath(*filter(None, target[1].split("/")))
        if member.isdir():
            path.mkdir(parents=True, exist_ok=True)
            continue
        if member.size > limits.max_file_bytes:
            raise ExtractError(f"{member.name} is {member.size} bytes, over EXT_EXTRACT_MAX_FILE_BYTES "
                               f"({limits.max_file_bytes})")
        total += member.size
        if total > limits.max_total_bytes:
            raise ExtractError(f"archive unpacks to more than {limits.max_total_bytes} bytes "
                               "(EXT_EXTRACT_MAX_TOTAL_BYTES)")
        _write(tar.extractfile(member), path, member.size)
        files += 1
    return ExtractResult(files=files, bytes=total, skipped=skipped)


def _write(src, path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():  # a repeated member: the last one wins, as in the reference
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o444)
    written = 0
    with os.fdopen(fd, "wb") as out:
        while chunk := src.read(READ_CHUNK):
            out.write(chunk)
            written += len(chunk)
        os.fchmod(out.fileno(), 0o444)
    if written != size:
        raise ExtractError(f"truncated archive: {path.name} ends early")


__all__ = ["ExtractError", "ExtractLimits", "ExtractResult", "extract_bundle", "member_target"]
