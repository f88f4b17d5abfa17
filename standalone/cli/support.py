"""Shared pieces of the ``flask ext`` commands: options, lookups, output, one-line errors."""
from __future__ import annotations

import functools
import json
import sys

import click
from flask import current_app

from service.progress import Progress, for_stream
from standalone import build as builds
from standalone import installer as installers
from standalone import seed as seeds
from standalone.manifest import FieldProblems, ManifestError
from standalone.packing import PackError
from standalone.wiring import Standalone
from storage.bundles.stores import BundleError
from storage.registry.installs import Install, RegistryError
from storage.registry.secrets import SecretsError


KNOWN_ERRORS = (ManifestError, seeds.SeedError, BundleError, PackError, RegistryError, SecretsError,
                builds.BuildError)


def describe(e: Exception) -> str:
    """The user-facing text of one of KNOWN_ERRORS (one line per field for a manifest or seed file)."""
    if isinstance(e, FieldProblems):
        source = "manifest.json" if isinstance(e, ManifestError) else "seed file"
        lines = "".join(f"\n  {field}: {message}" for field, message in e.problems)
        return f"{source} has {len(e.problems)} problem(s); fix and run again:{lines}"
    if isinstance(e, BundleError):
        return f"{e.reason}; check BUNDLE_STORE_BASE (and the S3 keys)"
    if isinstance(e, builds.BuildError) and e.output.strip():
        return f"{e}; its output:\n{e.output.rstrip()}"
    return str(e)


def friendly(f):
    """KNOWN_ERRORS become an ``Error:`` message instead of a traceback."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except KNOWN_ERRORS as e:
            raise click.ClickException(describe(e)) from None

    return wrapper


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(f)


def tenant_option(f):
    return click.option("--tenant", "-t", help="Tenant id (default: EXT_DEFAULT_TENANT).")(f)


def state() -> Standalone:
    """The registry and its companions, as standalone.init_app made them for this app."""
    return current_app.extensions["standalone"]


def default_tenant(tenant: str | None) -> str:
    return tenant or state().default_tenant


def find_install(ref: str, tenant: str | None) -> Install:
    tenant = default_tenant(tenant)
    found = state().registry.find(tenant, ref)
    if found is None:
        raise click.ClickException(f"no extension {ref!r} is installed for tenant {tenant}; "
                                   f"see: flask ext list --tenant {tenant}")
    return found


def echo(as_json: bool, data, text: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else text)


def progress() -> Progress:
    """Long steps on stderr: a spinner with the elapsed time in a terminal, plain lines otherwise."""
    return for_stream(sys.stderr)


def make_installer(shown: Progress | None = None) -> installers.Installer:
    try:
        return state().installer(shown or progress())
    except ValueError as e:  # EXT_SIGNING_KEY_FILE holds no usable key
        raise click.ClickException(f"{e}; check EXT_SIGNING_KEY_FILE (flask ext keygen makes a key)") from None


def report(result: installers.InstallResult, as_json: bool) -> None:
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    i = result.install
    state = f"installed ({', '.join(result.changed)} written)" if result.changed else "unchanged"
    echo(as_json, result.to_dict(), "\n".join([
        f"{i.name} {i.version} for tenant {i.tenant_id}: {state}",
        f"  registry id   {i.registry_id}", f"  version id    {i.version_id}", f"  content hash  {i.content_hash}",
        f"  UI            {result.ui_url or '(the manifest has no ui)'}", f"  API           {result.api_base}"]))
