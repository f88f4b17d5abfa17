"""Settings of the bundle store and the extraction cache."""
from __future__ import annotations

from dataclasses import dataclass

from service.config import setting

MiB = 1 << 20


@dataclass(frozen=True)
class BundleSettings:
    bundle_store_base: str = setting("BUNDLE_STORE_BASE", "var/bundles",
                                     "Bundle store: a folder, file:// URL or http(s):// base including the bucket.")
    cache_root: str = setting("EXT_CACHE_ROOT", "var/cache", "Extraction cache and precompiled components.")
    cache_max_bytes: int | None = setting("EXT_CACHE_MAX_BYTES", None,
                                          "Cache size cap; least recently used idle bundles are evicted.")
    s3_access_key: str = setting("S3_ACCESS_KEY", "", "S3/MinIO access key (enables SigV4).",
                                 aliases=("MINIO_ACCESS_KEY",))
    s3_secret_key: str = setting("S3_SECRET_KEY", "", "S3/MinIO secret key.", aliases=("MINIO_SECRET_KEY",))
    s3_region: str = setting("S3_REGION", "us-east-1", "S3 signing region.")
    bundle_fetch_timeout_ms: int = setting("EXT_BUNDLE_FETCH_TIMEOUT_MS", 60000, "Bundle download timeout.")
    max_archive_bytes: int = setting("EXT_MAX_ARCHIVE_BYTES", 256 * MiB, "Largest bundle archive downloaded.")
    extract_max_entries: int = setting("EXT_EXTRACT_MAX_ENTRIES", 10000, "Most archive members extracted.")
    extract_max_file_bytes: int = setting("EXT_EXTRACT_MAX_FILE_BYTES", 128 * MiB, "Largest unpacked member.")
    extract_max_total_bytes: int = setting("EXT_EXTRACT_MAX_TOTAL_BYTES", 512 * MiB, "Largest unpacked bundle.")
    signing_trust_bundle: str = setting(
        "SIGNING_TRUST_BUNDLE", "",
        "PEM (inline, or a file path) of trusted Ed25519/ECDSA public keys and X.509 certificates; when set, a "
        "bundle is used only if its bundle.sig verifies against one of them.")
    signing_key_file: str = setting("EXT_SIGNING_KEY_FILE", "",
                                    "Private key (PEM) that `flask ext install` signs bundles with; `flask ext "
                                    "keygen` makes one.")
