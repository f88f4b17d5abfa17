"""Streamed extraction against hostile archives: table-driven, every case on real .tar.zst bytes."""
from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
import zstandard

from storage.bundles.extract import ExtractError, ExtractLimits, extract_bundle, member_target

LIMITS = ExtractLimits(max_entries=50, max_file_bytes=1 << 20, max_total_bytes=4 << 20)


Member = tuple[tarfile.TarInfo, bytes]


def member(name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE, linkname: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info, data


def tar_bytes(members: list[Member]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return raw.getvalue()


def tar_zst(members: list[Member], level: int = 3) -> bytes:
    return zstandard.ZstdCompressor(level=level).compress(tar_bytes(members))


def extract(tmp_path: Path, data: bytes, limits: ExtractLimits = LIMITS):
    archive = tmp_path / "b.tar.zst"
    archive.write_bytes(data)
    return extract_bundle(archive, tmp_path / "out", limits)


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def test_layout_and_modes(tmp_path):
    result = extract(tmp_path, tar_zst([
        member("./ui/index.html", b"<html>"), member("ui/assets/app.js", b"js"), member("dist/main.wasm", b"\0asm"),
        member("manifest.json", b"{}"), member("ui", kind=tarfile.DIRTYPE), member("wit", kind=tarfile.DIRTYPE),
    ]))
    out = tmp_path / "out"
    assert files_under(out) == {"ui/index.html", "ui/assets/app.js", "bundle/dist/main.wasm", "bundle/manifest.json"}
    assert (out / "bundle" / "wit").is_dir()
    assert stat.S_IMODE(os.stat(out / "ui" / "index.html").st_mode) == 0o444
    assert (result.files, result.bytes) == (4, 6 + 2 + 4 + 2)


@pytest.mark.parametrize("name, expected", [
    ("ui/index.html", ("ui", "index.html")),
    ("./././ui/a.js", ("ui", "a.js")),
    ("dist/main.wasm", ("bundle", "dist/main.wasm")),
    ("", None), ("./", None), ("/etc/passwd", None), ("../x", None), ("a/../../x", None),
    ("a..b.js", None),  # the reference skips any name containing "..", as a substring
    ("ui/.env", None), (".hidden", None), ("a//b", None), ("ui/", None), ("ui", None),
])
def test_member_target_rules(name, expected):
    assert member_target(name) == expected


@pytest.mark.parametrize("evil", [
    member("../../escape.txt", b"evil"),
    member("/tmp/absolute.txt", b"evil"),
    member("ui/../../escape.txt", b"evil"),
    member("ui/.secret", b"evil"),
    member("ui/link", kind=tarfile.SYMTYPE, linkname="/etc/passwd"),
    member("ui/hard", kind=tarfile.LNKTYPE, linkname="ui/index.html"),
    member("ui/dev", kind=tarfile.CHRTYPE),
    member("ui/fifo", kind=tarfile.FIFOTYPE),
], ids=["traversal", "absolute", "nested-traversal", "hidden", "symlink", "hardlink", "device", "fifo"])
def test_hostile_members_are_skipped(tmp_path, evil):
    result = extract(tmp_path, tar_zst([member("ui/index.html", b"<html>"), evil]))
    assert files_under(tmp_path / "out") == {"ui/index.html"}
    assert result.skipped == 1
    assert not (tmp_path / "escape.txt").exists() and not Path("/tmp/absolute.txt").exists()


def test_symlink_then_file_through_it_cannot_escape(tmp_path):
    extract(tmp_path, tar_zst([member("ui/d", kind=tarfile.SYMTYPE, linkname=str(tmp_path)),
                               member("ui/d/x.js", b"x")]))
    assert not (tmp_path / "x.js").exists()
    assert (tmp_path / "out" / "ui" / "d").is_dir() and not (tmp_path / "out" / "ui" / "d").is_symlink()


def test_duplicate_member_last_wins(tmp_path):
    extract(tmp_path, tar_zst([member("ui/a.js", b"first"), member("ui/a.js", b"second")]))
    assert (tmp_path / "out" / "ui" / "a.js").read_bytes() == b"second"


def zstd_bomb() -> bytes:
    """6 MiB of zeros as one member, compressed to a few hundred bytes (limits allow 1 MiB per file)."""
    return tar_zst([member("ui/zeros.js", bytes(6 << 20))], level=19)


def many_files(n: int, size: int) -> bytes:
    return tar_zst([member(f"ui/f{i}.js", b"z" * size) for i in range(n)], level=19)


@pytest.mark.parametrize("data, limits, reason", [
    (zstd_bomb(), LIMITS, "EXT_EXTRACT_MAX_TOTAL_BYTES"),  # stopped while decoding, before tar sees it
    (zstd_bomb(), ExtractLimits(50, 1 << 20, 64 << 20), "EXT_EXTRACT_MAX_FILE_BYTES"),
    (many_files(5, 1 << 20), LIMITS, "EXT_EXTRACT_MAX_TOTAL_BYTES"),
    (many_files(60, 10), LIMITS, "EXT_EXTRACT_MAX_ENTRIES"),
    (tar_zst([member("ui/big.png", b"p" * ((1 << 20) + 1))]), LIMITS, "EXT_EXTRACT_MAX_FILE_BYTES"),
    (b"\x1f" * 1024, LIMITS, "not a zstd archive"),
    (b"", LIMITS, "unreadable tar"),
    (zstandard.ZstdCompressor().compress(b"this is not a tar archive" * 40), LIMITS, "unreadable tar"),
    (tar_zst([member("ui/a.js", os.urandom(200_000))])[:-100], LIMITS, "truncated"),
    (tar_zst([member("ui/a.js", os.urandom(200_000))]) + b"garbage", LIMITS, "not a zstd archive"),
], ids=["bomb-total", "bomb-per-file", "total", "entries", "per-file", "not-zstd", "empty", "not-tar",
        "truncated", "trailing-garbage"])
def test_limits_and_broken_archives(tmp_path, data, limits, reason):
    with pytest.raises(ExtractError, match=reason):
        extract(tmp_path, data, limits)


def test_skipped_members_count_against_the_decoded_stream(tmp_path):
    """A huge member that is skipped (hidden name) is still decoded; the stream cap stops it."""
    data = tar_zst([member(".huge", bytes(8 << 20))], level=19)
    with pytest.raises(ExtractError, match="EXT_EXTRACT_MAX_TOTAL_BYTES"):
        extract(tmp_path, data)


def test_truncated_at_a_member_boundary(tmp_path):
    """tar alone cannot tell: the end of the zstd frame is what proves the archive is whole."""
    blob = tar_bytes([member("ui/a.js", b"a" * 512), member("ui/b.js", b"b" * 512)])
    cctx = zstandard.ZstdCompressor(level=3)
    chunks = cctx.compressobj()
    data = chunks.compress(blob[:1024]) + chunks.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
    with pytest.raises(ExtractError, match="truncated"):
        extract(tmp_path, data)


def test_multiple_frames_are_one_stream(tmp_path):
    blob = tar_bytes([member(name, name.encode() * 300) for name in ("ui/a.js", "ui/b.js")])
    cctx = zstandard.ZstdCompressor(level=3)
    extract(tmp_path, cctx.compress(blob[:2048]) + cctx.compress(blob[2048:]))
    assert (tmp_path / "out" / "ui" / "b.js").read_bytes() == b"ui/b.js" * 300
