"""Property-based tests (hypothesis): the /v1/execute parser, the manifest validator, the /ext-ui path
rules and archive extraction hold their contracts for any input, not just the cases we thought of.

Assertions name statuses, error codes and fields, never a JSON library's message texts.
"""
from __future__ import annotations

import base64
import io
import json
import os
import tarfile
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from runner.contract import ExecuteRequest, RequestRejected, from_document, parse_execute
from standalone.manifest import ManifestError, validate
from static_cache.paths import ALLOWED_EXTENSIONS, sanitize
from storage.bundles.extract import ExtractError, ExtractLimits, extract_bundle, member_target

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HEX = "ab" * 32
REJECTION_STATUSES = {400: {"malformed_json"}, 415: {"unsupported_media_type"}, 422: {"invalid_request"}}

scalars = st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70) | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
clean_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)


def parse_or_reject(body: bytes) -> ExecuteRequest | RequestRejected:
    try:
        return parse_execute("application/json", body)
    except RequestRejected as e:
        assert e.error in REJECTION_STATUSES[e.status], (e.status, e.error)
        assert e.message and (e.field is None or isinstance(e.field, str))
        return e


def a_request(**over) -> dict:
    doc = {"context": {"tenant_id": "t", "extension_id": "e", "content_hash": f"sha256:{HEX}",
                       "config": {"k": "v"}},
           "http": {"method": "POST", "path": "/x", "query": {"a": "b"}, "headers": {"h": "v"},
                    "body_b64": base64.b64encode(b"{}").decode()},
           "limits": {"timeout_ms": 100}, "providers": ["cap:log.emit"]}
    doc.update(over)
    return doc


# the contract parser ---------------------------------------------------------------------------------

@FAST
@given(st.binary(max_size=300))
def test_any_bytes_are_parsed_or_rejected_with_a_contract_error(body):
    parse_or_reject(body)


@FAST
@given(json_values)
def test_any_json_document_is_parsed_or_rejected_with_a_contract_error(doc):
    parse_or_reject(json.dumps(doc).encode())


@FAST
@given(section=st.sampled_from(["context", "http", "limits", "user", "secret_envelope", "providers"]),
       value=json_values)
def test_any_value_in_a_known_section_is_parsed_or_rejected(section, value):
    parse_or_reject(json.dumps(a_request(**{section: value})).encode())


SURROGATE_FIELDS = [("context", "tenant_id"), ("context", "config", "k"), ("http", "path"), ("http", "method"),
                    ("http", "headers", "h"), ("http", "query", "a")]


def _with_string(field: tuple, value: str) -> dict:
    doc = a_request()
    *parents, key = field
    target = doc
    for p in parents:
        target = target[p]
    target[key] = value
    return doc


@FAST
@given(field=st.sampled_from(SURROGATE_FIELDS), before=clean_text, after=clean_text,
       surrogate=st.integers(0xD800, 0xDFFF))
def test_a_lone_surrogate_in_a_field_is_refused_with_the_field_named(field, before, after, surrogate):
    """The field validation, after any JSON library let the string through."""
    with pytest.raises(RequestRejected) as e:
        from_document(_with_string(field, before + chr(surrogate) + after))
    assert (e.value.status, e.value.error, e.value.field) == (400, "malformed_json", ".".join(field))


@FAST
@given(field=st.sampled_from(SURROGATE_FIELDS), before=clean_text, after=clean_text,
       surrogate=st.integers(0xD800, 0xDFFF), raw=st.booleans())
def test_a_lone_surrogate_in_the_body_is_400(field, before, after, surrogate, raw):
    """On the wire, as an escape or as its raw (invalid UTF-8) bytes: 400 from whichever step sees it
    first (a strict JSON library refuses the text, without naming a field)."""
    marker = "\ue000"  # stands in for the surrogate, replaced in the encoded bytes
    body = json.dumps(_with_string(field, before + marker + after), ensure_ascii=not raw).encode()
    if raw:
        body = body.replace(marker.encode(), chr(surrogate).encode("utf-8", "surrogatepass"))
    else:
        body = body.replace(b"\\ue000", b"\\u%04x" % surrogate)
    rejected = parse_or_reject(body)
    assert isinstance(rejected, RequestRejected) and (rejected.status, rejected.error) == (400, "malformed_json")
    assert rejected.field in (None, ".".join(field))


@FAST
@given(depth=st.sampled_from([128, 1_000, 5_000, 100_000]), where=st.sampled_from(["unknown", "context", "providers"]),
       opener=st.sampled_from(["[", '{"a":']))
def test_deep_nesting_is_400(depth, where, opener):
    closer = "]" if opener == "[" else "}"
    nested = opener * depth + "1" + closer * depth
    body = json.dumps(a_request()).replace('"providers"', f'"{where}": {nested}, "x"', 1).encode()
    rejected = parse_or_reject(body)
    assert isinstance(rejected, RequestRejected) and rejected.status == 400


@FAST
@given(tenant=clean_text.filter(str.strip), path=clean_text, headers=st.dictionaries(clean_text, clean_text,
                                                                                     max_size=3),
       timeout=st.none() | st.integers(0, (1 << 64) - 1))
def test_valid_requests_round_trip(tenant, path, headers, timeout):
    doc = a_request(limits={"timeout_ms": timeout})
    doc["context"]["tenant_id"] = tenant
    doc["http"].update(path=path, headers=headers)
    req = parse_or_reject(json.dumps(doc).encode())
    assert isinstance(req, ExecuteRequest)
    assert (req.context.tenant_id, req.http.path, req.http.headers, req.limits.timeout_ms) == \
           (tenant, path, headers, timeout)


# the manifest validator (its exact verdicts are Alga's rules, tested elsewhere) -----------------------

manifest_like = st.fixed_dictionaries({}, optional={
    "name": json_values | clean_text, "publisher": json_values | clean_text, "version": json_values | clean_text,
    "runtime": json_values | st.just("wasm-js@1"), "capabilities": json_values | st.lists(clean_text),
    "ui": json_values | st.fixed_dictionaries({"type": st.just("iframe"), "entry": clean_text}),
    "api": json_values | st.fixed_dictionaries({"endpoints": st.lists(st.fixed_dictionaries(
        {"method": clean_text, "path": clean_text, "handler": clean_text}), max_size=3)}),
    "assets": json_values, "entry": json_values | clean_text})


@FAST
@given(manifest_like | json_values)
def test_the_manifest_validator_raises_only_manifest_error(doc):
    try:
        validate(doc)
    except ManifestError as e:
        assert e.problems and all(isinstance(w, str) and isinstance(m, str) for w, m in e.problems)


# /ext-ui path rules ----------------------------------------------------------------------------------

path_chars = st.sampled_from(list("ab./\\%\x00\x1f\x7f\u0085 ~-_é")) | st.characters()
tails = st.lists(st.sampled_from(["", ".", "..", ".git", "a", "a.js", "x.JS", "b.exe", "index.html", "c/d"])
                 | st.text(path_chars, max_size=6), max_size=6).map("/".join)


@FAST
@given(tails)
@example("a/../b.js")
@example("ui/%2e%2e/x.js")
def test_sanitized_paths_stay_inside_the_ui_root(tail):
    rel = sanitize(tail)
    if rel is None:
        return
    segments = rel.split("/") if rel else []
    assert all(s and not s.startswith(".") and "\\" not in s for s in segments)
    assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f for c in rel)
    root = Path("/srv/ui")
    assert os.path.normpath(root / rel).startswith(str(root))
    if segments and "." in segments[-1]:
        assert segments[-1].rsplit(".", 1)[1].lower() in ALLOWED_EXTENSIONS
    assert sanitize(rel) == rel  # normalised: sanitising again changes nothing


# archive extraction ----------------------------------------------------------------------------------

LIMITS = ExtractLimits(max_entries=20, max_file_bytes=4096, max_total_bytes=16384)
names = st.lists(st.sampled_from(["ui", "dist", "..", ".", "", ".hidden", "a", "main.wasm", "/", "./"]),
                 min_size=1, max_size=4).map("/".join) | st.text(max_size=12)
kinds = st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE])
members = st.lists(st.tuples(names, kinds, st.binary(max_size=5000)), max_size=8)


def _archive(entries) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "../../etc/passwd" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return zstandard.ZstdCompressor(level=1).compress(raw.getvalue())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(entries=members, cut=st.none() | st.integers(0, 400), flip=st.none() | st.integers(0, 400))
def test_extraction_writes_only_regular_files_inside_the_destination(tmp_path_factory, entries, cut, flip):
    work = tmp_path_factory.mktemp("x")
    data = bytearray(_archive(entries))
    if cut is not None:
        del data[cut:]
    if flip is not None and flip < len(data):
        data[flip] ^= 0x55
    archive, dest = work / "b.tar.zst", work / "out"
    archive.write_bytes(data)
    try:
        result = extract_bundle(archive, dest, LIMITS)
    except ExtractError as e:
        assert e.reason
        result = None
    outside = [p for p in work.rglob("*") if p != archive and dest not in (p, *p.parents)]
    assert not outside
    written = [p for p in dest.rglob("*") if not p.is_dir()]
    assert all(p.is_file() and not p.is_symlink() for p in written)
    assert sum(p.stat().st_size for p in written) <= LIMITS.max_total_bytes
    if result is not None:
        assert result.files >= len(written)  # a repeated member is written again
        for p in written:  # every file is one the reference's rules allow
            rel = p.relative_to(dest).as_posix()
            part, _, inner = rel.partition("/")
            assert member_target(inner if part == "bundle" else f"ui/{inner}") is not None
