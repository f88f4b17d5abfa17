"""``flask ext keygen`` and ``flask ext sign``: bundle signatures for SIGNING_TRUST_BUNDLE."""
from __future__ import annotations

import os
from pathlib import Path

import click
from flask.cli import with_appcontext

from standalone.cli.support import echo, find_install, friendly, json_option, state, tenant_option
from storage.bundles import signing
from storage.bundles.stores import bundle_key


@click.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="signing-key.pem", show_default=True,
              help="Private key file (mode 0600); the public key goes to the same name + .pub.")
@click.option("--type", "kind", type=click.Choice(["ed25519", "ecdsa-p256", "ecdsa-p384"]), default="ed25519",
              show_default=True)
@click.option("--force", is_flag=True, help="Overwrite an existing key file.")
@json_option
def keygen(output, kind, force, as_json):
    """Make a signing key pair: set EXT_SIGNING_KEY_FILE to the private key, add the .pub to SIGNING_TRUST_BUNDLE."""
    private, public = Path(output), Path(f"{output}.pub")
    if private.exists() and not force:
        raise click.ClickException(f"{private} exists; use --force to replace it (bundles it signed stop verifying "
                                   "once its public key leaves SIGNING_TRUST_BUNDLE)")
    key = signing.generate_key(kind)
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(signing.private_pem(key))
    public.write_bytes(signing.public_pem(key))
    key_id = signing.key_id(key.public_key())
    echo(as_json, {"private_key": str(private), "public_key": str(public), "key_id": key_id, "type": kind},
         f"key {key_id}\n  private  {private}  (EXT_SIGNING_KEY_FILE={private})\n"
         f"  public   {public}  (append it to the SIGNING_TRUST_BUNDLE file)")


@click.command()
@with_appcontext
@click.argument("name_or_id")
@tenant_option
@click.option("--key", "key_file", type=click.Path(exists=True, dir_okay=False),
              help="Private key (default: EXT_SIGNING_KEY_FILE).")
@json_option
@friendly
def sign(name_or_id, tenant, key_file, as_json):
    """Sign an install's current bundle: writes bundle.sig beside it in the bundle store."""
    key_file = key_file or state().bundles.settings.signing_key_file
    if not key_file:
        raise click.ClickException("no signing key: pass --key or set EXT_SIGNING_KEY_FILE (flask ext keygen)")
    try:
        key = signing.load_private_key(key_file)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    i = find_install(name_or_id, tenant)
    hex_hash = i.hash_hex
    if hex_hash is None:
        raise click.ClickException(f"{i.name} has no bundle to sign; install it first: flask ext install")
    stored = signing.put_signature(state().bundles.store, bundle_key(i.tenant_id, i.registry_id, hex_hash),
                                   hex_hash, key)
    key_id = signing.key_id(key.public_key())
    echo(as_json, {"name": i.name, "content_hash": i.content_hash, "key_id": key_id, "signature": stored},
         f"signed {i.name} ({i.content_hash}) with {key_id}\n  {stored}")
