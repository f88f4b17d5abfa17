"""Writing bundle archives (.tar.zst) and hashing them.

The content hash of a bundle is the SHA-256 of the compressed archive bytes,
as everywhere in Alga. Members are written in sorted order with fixed
metadata, so the same files always give the same hash.
"""
from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Mapping, Union

import zstandard

Member = Union[bytes, str, Path]  # bytes = contents; str/Path = a file on disk


def write_bundle(members: Mapping[str, Member], dest: Union[str, Path], level: int = 19) -> str:
    """Write ``members`` (archive name -> contents or source file) to ``dest``; return the sha256 hex.

    The file appears atomically: it is written beside ``dest`` and renamed.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            cctx = zstandard.ZstdCompressor(level=level)
            with cctx.stream_writer(raw, closefd=False) as zw:
                with tarfile.open(fileobj=zw, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                    for name in sorted(members):
                        _add(tar, name, members[name])
        os.replace(tmp, dest)
    except BaseException:
        os.unlink(tmp)
        raise
    return sha256_file(dest)


def bundle_bytes(members: Mapping[str, Member]) -> tuple[bytes, str]:
    """The archive in memory, with its hash (tests and small samples)."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "bundle.tar.zst"
        digest = write_bundle(members, path, level=3)
        return path.read_bytes(), digest


def sha256_file(path: Union[str, Path]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _add(tar: tarfile.TarFile, name: str, member: Member) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.mode = 0o644
    if isinstance(member, (bytes, bytearray)):
        info.size = len(member)
        tar.addfile(info, io.BytesIO(member))
    else:
        path = Path(member)
        info.size = path.stat().st_size
        with open(path, "rb") as f:
            tar.addfile(info, f)
