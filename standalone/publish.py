"""The publish API of Alga's CLI, in standalone mode: ``alga extension publish|install|uninstall
--base-url http://127.0.0.1:8085`` works against this service unchanged.

Four routes with the paths, bodies and answers of Alga's server (callers.md §5.4), on the installer
``flask ext install`` uses:

- ``POST /api/ext-bundles/upload-proxy?filename=&size=&declaredHash=``: the archive bytes, streamed
  to a staging folder while hashed, capped at Alga's 200 MiB (or EXT_MAX_ARCHIVE_BYTES if smaller);
- ``POST /api/ext-bundles/finalize`` ``{key, declaredHash, size, manifestJson}``: the staged archive's
  hash checked against ``declaredHash``, the archive unpacked with the runner's limits, the manifest
  validated by standalone/manifest.py, the version registered (409 when it exists);
- ``POST /api/v1/extensions/install`` ``{registryId, version}`` and ``.../uninstall`` ``{registryId}``.

Every route needs ``x-api-key`` = EXT_PUBLISH_API_KEY (Alga's upload and finalize check no key;
its install at 432f5f58 also wants a browser session, which a CLI never has: here the key is
enough). ``x-tenant-id`` names the tenant (default EXT_DEFAULT_TENANT). Errors have the service's
shape plus Alga's ``code`` (and ``details``), which is all the CLI reads: it prints the same
messages as against Alga. After a wildcard publish the CLI installs the literal ``X.Y.*``: here
that means the newest published ``X.Y.N`` (Alga answers 500).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from flask import Blueprint, Flask, Response, jsonify, request

from service.errors import json_error
from service.progress import LoggedProgress
from standalone import manifest as manifests
from standalone.wiring import Standalone
from storage.bundles.extract import ExtractError, ExtractLimits, extract_bundle
from storage.bundles.stores import BundleError
from storage.registry.installs import PublishedVersion, RegistryError, VersionExists

log = logging.getLogger(__name__)

ALGA_MAX_BYTES = 209_715_200  # Alga's upload and finalize cap
STAGED_FOR_S = 3600  # staged uploads nobody finalized are removed after this long
CHUNK = 1 << 16
_HEX = re.compile(r"^[a-f0-9]{64}$")
_STAGING_KEY = re.compile(r"^sha256/_staging/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
                          r"/bundle\.tar\.zst$")
_WILDCARD = re.compile(r"^\s*(\d+)\.(\d+)\.\*\s*$")
_PATCH = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


class Refused(Exception):
    """An answer other than success: ``code`` is Alga's (``INVALID_MANIFEST``), the rest goes into the body."""

    def __init__(self, status: int, code: str, message: str, **extra: Any):
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra

    def response(self) -> Response:
        return json_error(self.status, self.code.lower(), self.message, code=self.code, **self.extra)


@dataclass
class PublishApi:
    """:param max_bytes: the largest archive accepted. :param staging: where uploads wait for finalize."""

    state: Standalone
    api_key: str
    max_bytes: int
    staging: Path
    limits: ExtractLimits


def init_app(app: Flask, api: PublishApi) -> None:
    app.register_blueprint(_blueprint(api))


def _blueprint(api: PublishApi) -> Blueprint:
    bp = Blueprint("publish", __name__)
    bp.register_error_handler(Refused, Refused.response)

    @bp.before_request
    def authenticate():
        if not api.api_key:
            raise Refused(403, "PUBLISH_API_DISABLED", "the publish API is off: set EXT_PUBLISH_API_KEY for the "
                          "service and give alga the same key (--api-key or ALGA_API_KEY)")
        given = request.headers.get("x-api-key", "")
        if not given:
            raise Refused(401, "UNAUTHORIZED", "API key required (x-api-key)")
        if not hmac.compare_digest(given.encode(), api.api_key.encode()):
            raise Refused(401, "UNAUTHORIZED", "Invalid API key (it must equal EXT_PUBLISH_API_KEY)")

    @bp.post("/api/ext-bundles/upload-proxy")
    def upload_proxy():
        _tenant(api)  # refused before the bytes travel
        return jsonify(_receive(api))

    @bp.post("/api/ext-bundles/finalize")
    def finalize():
        return jsonify(_finalize(api, _tenant(api)))

    @bp.post("/api/v1/extensions/install")
    def install():
        return jsonify(data=_install(api, _tenant(api))), 202

    @bp.post("/api/v1/extensions/uninstall")
    def uninstall():
        return jsonify(data=_uninstall(api, _tenant(api)))

    return bp


def _tenant(api: PublishApi) -> str:
    tenant = request.headers.get("x-tenant-id", "").strip() or api.state.default_tenant
    if api.state.registry.tenant(tenant) is None:
        raise Refused(404, "TENANT_NOT_FOUND", f"unknown tenant {tenant!r}: use EXT_DEFAULT_TENANT "
                      f"({api.state.default_tenant}) or create it with: flask ext tenants create {tenant}")
    return tenant


def _bad(message: str, code: str = "BAD_REQUEST") -> Refused:
    return Refused(400, code, message)


def _size(raw: Any, cap: int) -> int:
    """A byte count given as a number or a decimal string, 1 to ``cap``."""
    size = int(raw) if isinstance(raw, int) or (isinstance(raw, str) and raw.strip().isdigit()) else 0
    if isinstance(raw, bool) or size <= 0:
        raise _bad("size must be a positive number")
    if size > cap:
        raise _bad(f"size exceeds maximum of {cap} bytes")
    return size


def _declared_hash(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not _HEX.match(raw):
        raise _bad("declaredHash must be 64-char lowercase hex sha256")
    return raw


# upload-proxy --------------------------------------------------------------------------------

def _receive(api: PublishApi) -> dict:
    args = request.args
    filename = args.get("filename", "").strip()
    if not filename:
        raise _bad("filename is required")
    if not args.get("size", "").strip():
        raise _bad("size is required")
    size = _size(args["size"], api.max_bytes)
    declared = _declared_hash(args.get("declaredHash"))
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) != size:
        raise _bad("content-length header does not match size param")
    # The app-wide cap is for /v1/execute bodies. One byte over ``size`` may be read: that is how a longer
    # body is told apart from an exact one when the server ends the stream (Gunicorn, no content-length).
    request.max_content_length = size + 1
    key = _stage(api.staging, request.stream, size)
    log.info("bundle upload staged", extra={"key": key, "bytes": size})
    answer = {"upload": {"key": key, "strategy": "staging"}, "filename": filename, "size": size}
    if declared is not None:
        answer["declaredHash"] = declared
    return answer


def _stage(root: Path, stream: BinaryIO, size: int) -> str:
    """Write exactly ``size`` bytes of ``stream`` to a new staging folder with their hash; returns its key."""
    _sweep(root)
    upload_id = str(uuid.uuid4())
    folder = root / upload_id
    folder.mkdir(parents=True)
    digest, total = hashlib.sha256(), 0
    try:
        with open(folder / "bundle.tar.zst", "wb") as out:
            while total <= size and (chunk := stream.read(min(CHUNK, size + 1 - total))):
                digest.update(chunk)
                out.write(chunk)
                total += len(chunk)
        if total == 0:
            raise _bad("Missing request body")
        if total != size:
            raise _bad(f"the body is {'more' if total > size else f'{total} bytes'}, but size is {size}")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    (folder / "sha256").write_text(digest.hexdigest())
    return f"sha256/_staging/{upload_id}/bundle.tar.zst"


def _sweep(root: Path) -> None:
    if not root.is_dir():
        return
    for folder in root.iterdir():
        try:
            if time.time() - folder.stat().st_mtime > STAGED_FOR_S:
                shutil.rmtree(folder, ignore_errors=True)
        except FileNotFoundError:  # another request swept it
            pass


# finalize ------------------------------------------------------------------------------------

def _json_object(optional: bool = False) -> dict:
    try:
        body = json.loads(request.get_data(cache=False) or b"null")
    except ValueError:
        if optional:  # Alga's install and uninstall read an unparsable body as {}
            return {}
        raise _bad("Invalid JSON body") from None
    if isinstance(body, dict):
        return body
    if optional:
        return {}
    raise _bad("Body must be a JSON object")


def _finalize(api: PublishApi, tenant: str) -> dict:
    body = _json_object()
    key = body.get("key")
    if not isinstance(key, str) or not key.strip():
        raise _bad("key is required")
    if not key.startswith("sha256/"):
        raise _bad('key must start with "sha256/"')
    size = _size(body["size"], api.max_bytes) if "size" in body else None
    declared = _declared_hash(body["declaredHash"]) if "declaredHash" in body else None
    match = _STAGING_KEY.match(key)
    if match is None:
        raise _bad("invalid staging key (expected sha256/_staging/<upload id>/bundle.tar.zst, "
                   "as upload-proxy answered)")
    folder = api.staging / match.group(1)
    archive = folder / "bundle.tar.zst"
    if not archive.is_file():
        raise Refused(400, "STAGING_NOT_FOUND", "Uploaded staging object not found in storage (uploads wait "
                      f"{STAGED_FOR_S // 60} minutes for finalize)")
    computed = (folder / "sha256").read_text()
    if declared is not None and declared != computed:
        raise Refused(400, "HASH_MISMATCH", "Declared hash does not match computed content hash",
                      details={"declared": declared, "computed": computed})
    actual_size = archive.stat().st_size
    if size is not None and size != actual_size:
        raise _bad(f"size is {size} but the uploaded archive has {actual_size} bytes", "SIZE_MISMATCH")
    manifest = _checked_manifest(archive, body.get("manifestJson"), api.limits)
    answer = _register(api, tenant, archive, computed, actual_size, manifest)
    shutil.rmtree(folder, ignore_errors=True)
    return answer


def _checked_manifest(archive: Path, text: Any, limits: ExtractLimits) -> manifests.Manifest:
    """The validated manifest (``manifestJson``, else the archive's own), after unpacking the archive
    with the runner's limits: what the runner could not unpack is refused now, not at the first call."""
    with tempfile.TemporaryDirectory(prefix="ext-finalize-") as tmp:
        try:
            extract_bundle(archive, tmp, limits)
        except ExtractError as e:
            raise _bad(f"the archive can not be unpacked: {e.reason}", "INVALID_BUNDLE") from None
        bundle = Path(tmp) / "bundle"
        if not isinstance(text, str) or not text.strip():
            found = [p for p in (bundle / "manifest.json", *bundle.glob("*/manifest.json")) if p.is_file()]
            if not found:
                raise _bad("manifest.json not found in the archive (and no manifestJson given)",
                           "MANIFEST_NOT_FOUND")
            text = found[0].read_text(encoding="utf-8", errors="replace")
        manifest = _validated(text)
        if manifest.endpoints and not (bundle / "dist" / "main.wasm").is_file():
            raise _bad("the manifest declares api.endpoints but the archive has no dist/main.wasm",
                       "INVALID_BUNDLE")
    return manifest


def _validated(text: str) -> manifests.Manifest:
    try:
        return manifests.parse(text)
    except manifests.ManifestError as e:
        raise Refused(400, "INVALID_MANIFEST", "Invalid manifest",
                      details={"issues": [{"path": path, "message": message} for path, message in e.problems]}
                      ) from None


def _register(api: PublishApi, tenant: str, archive: Path, hex_hash: str, size: int,
              manifest: manifests.Manifest) -> dict:
    installer = api.state.installer(LoggedProgress(log, tenant=tenant, extension=manifest.name))
    try:
        result = installer.publish(archive, hex_hash, size, manifest, tenant)
    except VersionExists as e:
        raise Refused(409, "EXTENSION_VERSION_ALREADY_EXISTS", str(e), success=False) from None
    except BundleError as e:
        raise Refused(502, "BUNDLE_STORE_FAILED", f"{e.reason}; check BUNDLE_STORE_BASE") from None
    published = result.published
    extension = {"id": published.registry_id, "name": manifest.name}
    if "publisher" in manifest.raw:  # Alga leaves it out when the manifest has none
        extension["publisher"] = manifest.publisher
    log.info("extension published", extra={"tenant": tenant, "extension": published.registry_id,
                                           "version": published.version, "hash": hex_hash})
    return {"extension": extension, "version": {"id": published.version_id, "version": published.version},
            "contentHash": hex_hash, "canonicalKey": result.key}


# install / uninstall -------------------------------------------------------------------------

def _required(body: dict, *names: str) -> list[str]:
    problems = [{"path": [n], "message": f"{n} is required and must be a non-empty string"}
                for n in names if not isinstance(body.get(n), str) or not body[n].strip()]
    if problems:
        raise Refused(400, "VALIDATION_ERROR", "Validation failed", details=problems)
    return [body[n].strip() for n in names]


def _install(api: PublishApi, tenant: str) -> dict:
    registry_id, wanted = _required(_json_object(optional=True), "registryId", "version")
    version = _find_version(api, registry_id, wanted)
    installer = api.state.installer(LoggedProgress(log, tenant=tenant, extension=registry_id))
    try:
        result = installer.install_version(version, tenant)
    except (RegistryError, BundleError) as e:
        raise Refused(409, "INSTALL_FAILED", getattr(e, "reason", None) or str(e)) from None
    data = {"registryId": registry_id, "version": version.version, "installId": result.install.id,
            "success": True, "message": "Extension installed"}
    if result.warnings:
        data["warnings"] = result.warnings
    log.info("extension installed", extra={"tenant": tenant, "extension": registry_id, "version": version.version})
    return data


def _find_version(api: PublishApi, registry_id: str, wanted: str) -> PublishedVersion:
    registry = api.state.registry
    published = list(registry.versions(registry_id))
    if not published:
        raise Refused(404, "EXTENSION_NOT_FOUND", f"no extension with registry id {registry_id!r} is published here")
    resolved = newest_match(wanted, published) or wanted
    version = registry.version(registry_id, resolved)
    if version is None:
        raise Refused(404, "VERSION_NOT_FOUND", f"version {wanted!r} is not published for {registry_id} "
                      f"(published: {', '.join(published)})")
    return version


def newest_match(wanted: str, published: list[str]) -> str | None:
    """For ``X.Y.*`` (what the CLI installs after a wildcard publish), the highest ``X.Y.N`` published."""
    wildcard = _WILDCARD.match(wanted)
    if wildcard is None:
        return None
    patches = [(int(m.group(3)), v) for v in published
               if (m := _PATCH.match(v)) and (m.group(1), m.group(2)) == wildcard.groups()]
    return max(patches)[1] if patches else None


def _uninstall(api: PublishApi, tenant: str) -> dict:
    (registry_id,) = _required(_json_object(optional=True), "registryId")
    try:
        install = api.state.registry.find(tenant, registry_id)
    except RegistryError as e:
        raise Refused(409, "AMBIGUOUS_EXTENSION", str(e)) from None
    if install is not None:  # as in Alga, nothing installed is a success too
        api.state.registry.uninstall(install)
        log.info("extension uninstalled", extra={"tenant": tenant, "extension": install.registry_id})
    return {"registryId": registry_id, "success": True, "message": "Uninstalled"}
