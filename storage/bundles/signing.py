"""Detached bundle signatures, verified against ``SIGNING_TRUST_BUNDLE`` (Alga's security_signing.md).

A signature is a small JSON document stored beside the archive in the bundle store, at
``tenants/{tenant}/extensions/{extension}/sha256/{hex}/bundle.sig``::

    {"format": "alga-bundle-signature/v1", "content_hash": "sha256:<hex>",
     "key_id": "sha256:<hex of the signer's SubjectPublicKeyInfo DER>",
     "algorithm": "ed25519" | "ecdsa-p256-sha256" | "ecdsa-p384-sha384" | "ecdsa-p521-sha512",
     "signature": "<base64>"}

The signed message is ``alga-bundle-signature/v1\\nsha256:<hex>``: the content hash (the SHA-256 of
the archive bytes, checked on every fetch) behind a fixed prefix, so a signature means nothing else.
The trust bundle is PEM (inline, or the path of a PEM file as Alga's Knative manifest sets it) with
``PUBLIC KEY`` blocks (Ed25519 or ECDSA) and X.509 ``CERTIFICATE`` blocks; a certificate is trusted
as itself (its key, within its validity dates): no chains are built.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from storage.bundles.stores import BundleError, BundleStore

log = logging.getLogger(__name__)

FORMAT = "alga-bundle-signature/v1"
SIGNATURE_FILE = "bundle.sig"
MAX_SIGNATURE_BYTES = 16 << 10
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.S)
_CURVES = {"secp256r1": ("ecdsa-p256-sha256", hashes.SHA256), "secp384r1": ("ecdsa-p384-sha384", hashes.SHA384),
           "secp521r1": ("ecdsa-p521-sha512", hashes.SHA512)}
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


class SignatureRejected(BundleError):
    """The bundle has no signature that verifies against the trust bundle; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(f"signature rejected: {reason}")


def signature_key(archive_key: str) -> str:
    """The store key of the signature beside ``archive_key`` (``.../bundle.tar.zst``)."""
    return archive_key.rsplit("/", 1)[0] + "/" + SIGNATURE_FILE


def message(hex_hash: str) -> bytes:
    return f"{FORMAT}\nsha256:{hex_hash.lower()}".encode()


def key_id(key: PublicKey) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def algorithm(key: PublicKey) -> str:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _CURVES:
        return _CURVES[key.curve.name][0]
    raise ValueError(f"unsupported key type {type(key).__name__} (use Ed25519 or ECDSA P-256/P-384/P-521)")


@dataclass
class _Trusted:
    key: PublicKey
    source: str  # "public key #n" or the certificate's subject
    not_before: datetime | None = None
    not_after: datetime | None = None


@dataclass
class TrustBundle:
    keys: dict[str, _Trusted] = field(default_factory=dict)
    problem: str = ""  # why nothing can verify (unreadable file, no usable key)

    @classmethod
    def load(cls, value: str) -> "TrustBundle":
        """From PEM text, or the path of a PEM file. Never raises: a bad bundle trusts nothing."""
        if "-----BEGIN" in value:
            data = value.encode()
        else:
            try:
                data = Path(value.strip()).read_bytes()
            except OSError as e:
                return cls(problem=f"SIGNING_TRUST_BUNDLE file cannot be read: {e.strerror or e} ({value.strip()})")
        trust = cls()
        for n, block in enumerate(_PEM_BLOCK.finditer(data), 1):
            try:
                trust._add(block.group(1).decode(), block.group(0), n)
            except ValueError as e:
                log.warning("SIGNING_TRUST_BUNDLE block %d ignored: %s", n, e)
        if not trust.keys:
            trust.problem = "SIGNING_TRUST_BUNDLE holds no usable public key or certificate"
        log.info("signature trust bundle loaded", extra={"keys": sorted(trust.keys)})
        return trust

    def _add(self, kind: str, pem: bytes, n: int) -> None:
        if kind == "CERTIFICATE":
            cert = x509.load_pem_x509_certificate(pem)
            key, source = cert.public_key(), cert.subject.rfc4514_string() or f"certificate #{n}"
            before, after = cert.not_valid_before_utc, cert.not_valid_after_utc
        elif kind == "PUBLIC KEY":
            key, source, before, after = serialization.load_pem_public_key(pem), f"public key #{n}", None, None
        else:
            raise ValueError(f"a {kind} block is neither a PUBLIC KEY nor a CERTIFICATE")
        algorithm(key)  # refuses unsupported key types
        self.keys[key_id(key)] = _Trusted(key, source, before, after)

    def verify(self, hex_hash: str, document: bytes) -> str:
        """The key id that signed ``hex_hash``; SignatureRejected with the reason otherwise."""
        if self.problem:
            raise SignatureRejected(self.problem)
        doc = _parse(document)
        if doc["content_hash"].lower() != f"sha256:{hex_hash.lower()}":
            raise SignatureRejected(f"the signature is for {doc['content_hash'][:80]}, not sha256:{hex_hash}")
        trusted = self.keys.get(doc["key_id"])
        if trusted is None:
            raise SignatureRejected(f"signed by key {doc['key_id'][:80]}, which SIGNING_TRUST_BUNDLE does not hold")
        now = datetime.now(timezone.utc)
        if (trusted.not_before and now < trusted.not_before) or (trusted.not_after and now > trusted.not_after):
            raise SignatureRejected(f"the certificate {trusted.source} is not valid now")
        if doc["algorithm"] != algorithm(trusted.key):
            raise SignatureRejected(f"algorithm {doc['algorithm'][:40]} does not match key {doc['key_id']}")
        try:
            _verify(trusted.key, doc["signature"], message(hex_hash))
        except InvalidSignature:
            raise SignatureRejected(f"the signature does not verify with key {doc['key_id']} ({trusted.source})")
        return doc["key_id"]


def _parse(document: bytes) -> dict:
    try:
        doc = json.loads(document)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"not an {FORMAT} document")
        for name in ("content_hash", "key_id", "algorithm", "signature"):
            if not isinstance(doc.get(name), str):
                raise ValueError(f"{name} is missing")
        doc["signature"] = base64.b64decode(doc["signature"], validate=True)
    except (ValueError, binascii.Error, RecursionError) as e:
        raise SignatureRejected(f"{SIGNATURE_FILE} is unreadable: {e}") from None
    return doc


def _verify(key: PublicKey, signature: bytes, data: bytes) -> None:
    if isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(signature, data)
    else:
        key.verify(signature, data, ec.ECDSA(_CURVES[key.curve.name][1]()))


# signing (the CLI and the installer) -----------------------------------------------------------------

def generate_key(kind: str = "ed25519") -> PrivateKey:
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    curve = {"ecdsa-p256": ec.SECP256R1, "ecdsa-p384": ec.SECP384R1}[kind]
    return ec.generate_private_key(curve())


def private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key(path: str | Path) -> PrivateKey:
    """ValueError with the reason when ``path`` holds no usable signing key."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except OSError as e:
        raise ValueError(f"cannot read the signing key {path}: {e.strerror or e}") from None
    algorithm(key.public_key())
    return key


def sign(key: PrivateKey, hex_hash: str) -> bytes:
    """The signature document for the bundle ``hex_hash``."""
    public = key.public_key()
    data = message(hex_hash)
    raw = key.sign(data) if isinstance(key, ed25519.Ed25519PrivateKey) else key.sign(
        data, ec.ECDSA(_CURVES[key.curve.name][1]()))
    return json.dumps({"format": FORMAT, "content_hash": f"sha256:{hex_hash.lower()}", "key_id": key_id(public),
                       "algorithm": algorithm(public), "signature": base64.b64encode(raw).decode()},
                      indent=1).encode() + b"\n"


def put_signature(store: BundleStore, archive_key: str, hex_hash: str, key: PrivateKey) -> str:
    """Sign the bundle and store the signature beside its archive; returns the signature's key."""
    target = signature_key(archive_key)
    fd, tmp = tempfile.mkstemp(suffix=".sig")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(sign(key, hex_hash))
        store.put(target, tmp)
    finally:
        os.unlink(tmp)
    return target


__all__ = ["SignatureRejected", "TrustBundle", "signature_key", "sign", "generate_key", "load_private_key",
           "private_pem", "public_pem", "key_id", "put_signature", "SIGNATURE_FILE", "MAX_SIGNATURE_BYTES"]
