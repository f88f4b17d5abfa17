"""Signed bundles: with SIGNING_TRUST_BUNDLE set, a bundle runs and serves only when its bundle.sig
verifies against a trusted key (good, wrong key, tampered, missing, rotation, certificates); unset,
nothing changes. Real keys and certificates made with cryptography; the real executor and /ext-ui."""
from __future__ import annotations

import datetime
import json
import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from helpers import execute_body, post_execute, publish
from standalone_helpers import write_extension

from app import service_of as svc
from storage.bundles import signing
from storage.bundles.signing import SignatureRejected, TrustBundle

HEX = "cd" * 32


def keypair(kind="ed25519"):
    key = signing.generate_key(kind)
    return key, signing.public_pem(key).decode()


def certificate(key, days=(-1, 30)) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "publisher.example")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now + datetime.timedelta(days=days[0]))
            .not_valid_after(now + datetime.timedelta(days=days[1]))
            .sign(key, None if isinstance(key, signing.ed25519.Ed25519PrivateKey) else hashes.SHA256()))
    from cryptography.hazmat.primitives.serialization import Encoding
    return cert.public_bytes(Encoding.PEM).decode()


def rejected(trust: TrustBundle, hex_hash: str, document: bytes) -> str:
    with pytest.raises(SignatureRejected) as e:
        trust.verify(hex_hash, document)
    return e.value.reason


# the trust bundle and the document -------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["ed25519", "ecdsa-p256", "ecdsa-p384"])
def test_a_good_signature_verifies(kind):
    key, pem = keypair(kind)
    assert TrustBundle.load(pem).verify(HEX, signing.sign(key, HEX)) == signing.key_id(key.public_key())


def test_wrong_key_tampered_and_foreign_signatures_are_rejected():
    key, pem = keypair()
    other, _ = keypair()
    trust = TrustBundle.load(pem)
    assert "does not hold" in rejected(trust, HEX, signing.sign(other, HEX))
    doc = json.loads(signing.sign(key, HEX))
    sig = bytearray(signing.base64.b64decode(doc["signature"]))
    sig[0] ^= 1
    doc["signature"] = signing.base64.b64encode(bytes(sig)).decode()
    assert "does not verify" in rejected(trust, HEX, json.dumps(doc).encode())
    forged = json.loads(signing.sign(other, HEX))
    forged["key_id"] = signing.key_id(key.public_key())  # claims the trusted key
    assert "does not verify" in rejected(trust, HEX, json.dumps(forged).encode())
    assert "not sha256:" + "ab" * 32 in rejected(trust, "ab" * 32, signing.sign(key, HEX))
    assert "unreadable" in rejected(trust, HEX, b"not json")


def test_rotation_two_keys_in_the_trust_bundle():
    old, old_pem = keypair()
    new, new_pem = keypair("ecdsa-p256")
    both = TrustBundle.load(old_pem + "\n" + new_pem)
    assert both.verify(HEX, signing.sign(old, HEX)) != both.verify(HEX, signing.sign(new, HEX))
    assert "does not hold" in rejected(TrustBundle.load(new_pem), HEX, signing.sign(old, HEX))  # old one retired


def test_certificates_are_trusted_within_their_validity(tmp_path):
    key = signing.generate_key("ecdsa-p256")
    path = tmp_path / "trust.pem"
    path.write_text(certificate(key))
    assert TrustBundle.load(str(path)).verify(HEX, signing.sign(key, HEX))  # a path, as Alga's manifest sets
    expired = TrustBundle.load(certificate(key, days=(-30, -1)))
    assert "not valid now" in rejected(expired, HEX, signing.sign(key, HEX))


def test_an_unusable_trust_bundle_trusts_nothing(tmp_path):
    key, _ = keypair()
    assert "cannot be read" in rejected(TrustBundle.load(str(tmp_path / "missing.pem")), HEX, signing.sign(key, HEX))
    private_only = signing.private_pem(key).decode()
    assert "no usable" in rejected(TrustBundle.load(private_only), HEX, signing.sign(key, HEX))


# the executor and /ext-ui ----------------------------------------------------------------------------

@pytest.fixture
def signed_app(make_app, tmp_path, mini_wasm):
    """An app trusting a fresh key, with its own cache; returns (app, key, publish(label) -> hex)."""
    key, pem = keypair()

    def build(trust_pem=pem, cache="cache"):
        return make_app(workers=1, cache_root=str(tmp_path / cache), signing_trust_bundle=trust_pem)

    def new_bundle(app, label):
        store = svc(app).settings.bundles.bundle_store_base
        return publish(store, "tenant-a", "ext-a", {"dist/main.wasm": mini_wasm, "ui/index.html": b"<p>ui</p>",
                                                    "manifest.json": json.dumps({"n": label}).encode()})

    return build, key, new_bundle


def sign_in_store(app, key, hex_hash):
    return signing.put_signature(svc(app).bundles.store, f"tenants/tenant-a/extensions/ext-a/sha256/{hex_hash}/"
                                 "bundle.tar.zst", hex_hash, key)


def run(app, hex_hash):
    return post_execute(app.test_client(), execute_body(hex_hash, path="/echo")).get_json()


def ui(app, hex_hash):
    return app.test_client().get(f"/ext-ui/ext-a/sha256:{hex_hash}/index.html?tenant=tenant-a")


def test_unsigned_bundles_are_refused_until_signed(signed_app):
    build, key, new_bundle = signed_app
    app = build()
    digest = new_bundle(app, "unsigned")
    out = run(app, digest)
    assert out["status"] == 502 and out["error"].startswith(
        "bundle_fetch_failed: signature rejected: no signature beside the bundle")
    r = ui(app, digest)
    assert r.status_code == 502 and r.get_json()["code"] == "signature_rejected"
    assert "no signature" in r.get_json()["message"]
    sign_in_store(app, key, digest)  # failures are not cached: the next request picks it up
    assert run(app, digest)["status"] == 200 and ui(app, digest).status_code == 200


def test_a_signature_by_an_untrusted_key_is_refused(signed_app):
    build, _, new_bundle = signed_app
    app = build()
    digest = new_bundle(app, "wrong-key")
    sign_in_store(app, signing.generate_key(), digest)
    assert "which SIGNING_TRUST_BUNDLE does not hold" in run(app, digest)["error"]
    assert ui(app, digest).status_code == 502


def test_a_bundle_cached_before_signing_was_required_is_checked_again(signed_app):
    build, key, new_bundle = signed_app
    plain = build(trust_pem="")
    digest = new_bundle(plain, "cached-before")
    assert run(plain, digest)["status"] == 200  # extracted without any signature
    strict = build()  # same cache folder, trust bundle set
    assert "no signature" in run(strict, digest)["error"]
    sign_in_store(strict, key, digest)
    assert run(strict, digest)["status"] == 200
    assert (svc(strict).bundles.dir.bundle_root(digest) / signing.SIGNATURE_FILE).is_file()


def test_a_tampered_signature_in_the_store_is_refused(signed_app):
    build, key, new_bundle = signed_app
    app = build()
    digest = new_bundle(app, "tampered")
    stored = sign_in_store(app, key, digest)
    path = os.path.join(svc(app).settings.bundles.bundle_store_base, stored)
    doc = json.loads(open(path).read())
    doc["signature"] = doc["signature"][::-1]
    open(path, "w").write(json.dumps(doc))
    assert "signature rejected" in run(app, digest)["error"]


# the commands ----------------------------------------------------------------------------------------

def test_keygen_install_signs_and_sign(make_app, tmp_path, mini_wasm):
    keyfile = tmp_path / "k.pem"
    cli = make_app().test_cli_runner()
    out = cli.invoke(args=["ext", "keygen", "-o", str(keyfile), "--json"])
    assert out.exit_code == 0, out.output
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600 and json.loads(out.output)["key_id"].startswith("sha256:")
    assert cli.invoke(args=["ext", "keygen", "-o", str(keyfile)]).exit_code != 0  # never overwritten by mistake
    trust = (tmp_path / "k.pem.pub").read_text()

    folder = write_extension(tmp_path / "ext", name="com.tests.signed", wasm=mini_wasm,
                             endpoints=[{"method": "POST", "path": "/echo", "handler": "dist/main"}])
    signer = make_app(signing_key_file=str(keyfile), signing_trust_bundle=trust, cache_root=str(tmp_path / "c1"))
    installed = signer.test_cli_runner().invoke(args=["ext", "install", str(folder), "--json"])
    assert installed.exit_code == 0, installed.output
    result = json.loads(installed.stdout)
    assert "signing the bundle" in installed.stderr and not result["warnings"]  # warmed: the signature verified
    assert svc(signer).bundles.ensure(result["tenant"], result["registry_id"], result["content_hash"][7:]).trusted

    other = tmp_path / "other.pem"
    cli.invoke(args=["ext", "keygen", "-o", str(other)])
    resigned = cli.invoke(args=["ext", "sign", "com.tests.signed", "--key", str(other), "--json"])
    assert resigned.exit_code == 0, resigned.output
    assert json.loads(resigned.output)["key_id"] != json.loads(out.output)["key_id"]
    assert cli.invoke(args=["ext", "sign", "com.tests.signed"]).exit_code != 0  # no key configured


@pytest.mark.parametrize("signs_here", [True, False])
def test_published_bundles_are_signed_and_the_signature_follows_a_copy(make_app, tmp_path, mini_wasm, signs_here):
    """Alga's CLI publishes here (standalone/publish.py). With a signing key each stored archive is signed;
    installed for another tenant, the archive is copied to that tenant's key and signed there too. Without
    one (signed by the publisher elsewhere), the signature is copied with the archive."""
    from test_publish_api import API_KEY, TENANT, AlgaCli, cli_archive, manifest_text

    key, pem = keypair()
    keyfile = tmp_path / "k.pem"
    keyfile.write_bytes(signing.private_pem(key))
    app = make_app(publish_api_key=API_KEY, signing_key_file=str(keyfile) if signs_here else "",
                   signing_trust_bundle=pem, cache_root=str(tmp_path / "cache"))
    svc(app).standalone.registry.create_tenant(TENANT, "CLI tenant")
    manifest = manifest_text(name=f"com.example.signed-{signs_here}".lower())
    final = AlgaCli(app.test_client()).publish(manifest, cli_archive(manifest, mini_wasm), install=False)[1]
    final = final.get_json()
    store = svc(app).settings.bundles.bundle_store_base
    trust = TrustBundle.load(pem)
    hex_hash = final["canonicalKey"].split("/")[-2]
    if not signs_here:
        signing.put_signature(svc(app).bundles.store, final["canonicalKey"], hex_hash, key)
    assert trust.verify(hex_hash, open(os.path.join(store, signing.signature_key(final["canonicalKey"])), "rb").read())
    default = svc(app).settings.registry.default_tenant
    assert AlgaCli(app.test_client(), **{"x-tenant-id": default}).install(final["extension"]["id"],
                                                                          "1.0.0").status_code == 202
    copied = signing.signature_key(final["canonicalKey"].replace(TENANT, default))
    assert trust.verify(hex_hash, open(os.path.join(store, copied), "rb").read())
    r = app.test_client().post(f"/api/ext/{final['extension']['id']}/echo", data=b"signed")
    assert (r.status_code, r.data) == (200, b"signed")
