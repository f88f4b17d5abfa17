"""``flask ext ...``: the standalone registry's admin commands.

Commands that print data take ``--json``. A failure is an ``Error:`` line that
says what to do next (``click.ClickException``); long steps show their progress on
stderr (a spinner with the elapsed time in a terminal), results go to stdout. This
module has the install life cycle; manage.py has config, secrets, tenants, seed data,
invoices and logs; devloop.py the developer's loop (new, dev, call).
"""
from __future__ import annotations

import logging
from pathlib import Path

import click
from flask.cli import AppGroup

import migrations
from standalone import installer as installers
from standalone.cli import devloop, manage, signing
from standalone.cli.support import (default_tenant, echo, find_install, friendly, json_option, make_installer, report,
                                    state, tenant_option)
from standalone.gateway import providers
from standalone.packing import DEFAULT_LEVEL, pack as pack_folder
from storage.registry.db import connect
from storage.registry.db import migrate as apply_migrations

# Commands print their own results and progress: the service's info lines would say it all twice.
QUIETED = ("runner", "storage", "standalone", "static_cache", "service", "watchfiles")


def _quiet_service_logs() -> None:
    """Warnings and errors only from the service's own loggers while a command runs (the guest's lines,
    logger ``ext`` in the workers, stay)."""
    loggers = [logging.getLogger(name) for name in QUIETED]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)

    def restore() -> None:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)

    click.get_current_context().call_on_close(restore)


ext = AppGroup("ext", help="Pack, install and manage extensions in the standalone registry.",
               callback=_quiet_service_logs)
for _command in (manage.config, manage.secrets, manage.tenants, manage.seed, manage.invoices, manage.logs,
                 devloop.dev, devloop.call, signing.keygen, signing.sign):
    ext.add_command(_command)
ext.add_command(devloop.new)  # needs no app: writes files only


@ext.command()
@json_option
def migrate(as_json):
    """Apply pending database migrations (the service also applies them at start)."""
    path = state().registry.path
    db = connect(path)
    try:
        ran = apply_migrations(db)
        version = len(migrations.MIGRATIONS.applied(db))
    finally:
        db.close()
    text = "\n".join(f"applied {name}" for name in ran) or f"{path} is up to date"
    echo(as_json, {"database": str(path), "applied": ran, "version": version}, f"{text} (schema version {version})")


@ext.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Bundle file (default PATH/dist/bundle.tar.zst, with its hash in dist/bundle.sha256).")
@click.option("--level", type=click.IntRange(1, 22), default=DEFAULT_LEVEL, show_default=True,
              help="zstd level (alga pack uses 19).")
@json_option
@friendly
def pack(path, output, level, as_json):
    """Validate PATH/manifest.json and pack the extension into bundle.tar.zst; print its sha256."""
    dest = Path(output) if output else Path(path) / "dist" / "bundle.tar.zst"
    packed = pack_folder(path, dest, level)
    if not output:
        (dest.parent / "bundle.sha256").write_text(packed.hex + "\n")
    for warning in packed.manifest.warnings:
        click.echo(f"warning: {warning}", err=True)
    data = {"name": packed.manifest.name, "version": packed.manifest.version, "content_hash": packed.content_hash,
            "path": str(dest), "size_bytes": packed.size, "files": packed.files, "warnings": packed.manifest.warnings}
    echo(as_json, data, f"{packed.hex}  {dest}")


@ext.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@tenant_option
@click.option("--no-warm", is_flag=True, help="Do not compile the component now (the first request will).")
@json_option
@friendly
def install(path, tenant, no_warm, as_json):
    """Pack, upload and install PATH for a tenant; a changed extension is live at once."""
    report(make_installer().install(path, tenant, warm=not no_warm), as_json)


@ext.command()
@click.argument("name_or_id")
@tenant_option
@click.option("--purge", is_flag=True,
              help="Also delete its storage, schedules and (when no tenant has it) registry rows.")
@friendly
def uninstall(name_or_id, tenant, purge):
    """Remove an install (config and secrets go with it)."""
    removed = make_installer().uninstall(name_or_id, tenant, purge)
    click.echo(f"uninstalled {removed.name} for tenant {removed.tenant_id}{' (purged)' if purge else ''}")


@ext.command("list")
@tenant_option
@json_option
def list_installs(tenant, as_json):
    """The tenant's installs."""
    installs = state().registry.installs(default_tenant(tenant))
    rows = [f"{i.name:40} {i.version:10} {'enabled' if i.enabled else 'disabled':9} {i.registry_id}"
            for i in installs]
    echo(as_json, [i.to_dict() for i in installs],
          "\n".join(rows) or f"nothing installed for tenant {default_tenant(tenant)}")


@ext.command()
@click.argument("name_or_id")
@tenant_option
@json_option
@friendly
def show(name_or_id, tenant, as_json):
    """Everything about one install (secret names, never their values)."""
    i = find_install(name_or_id, tenant)
    st = state()
    data = {**i.to_dict(), "providers": providers(i), "secrets": st.secrets.names(i),
            "bundles": [vars(b) for b in st.registry.bundles(i.version_id)],
            "ui_url": installers.ui_url(st.public_base, i), "api_base": installers.api_base(st.public_base, i)}
    endpoints = "".join(f"\n    {e['method']:6} {e['path']}" for e in i.api_endpoints) or " (none)"
    echo(as_json, data, "\n".join([
        f"{i.name} {i.version} ({i.publisher}) for tenant {i.tenant_id}: {'enabled' if i.enabled else 'disabled'}",
        f"  registry id   {i.registry_id}", f"  install id    {i.id}", f"  content hash  {i.content_hash}",
        f"  providers     {', '.join(data['providers'])}", f"  config keys   {', '.join(i.config) or '(none)'}",
        f"  secrets       {', '.join(data['secrets']) or '(none)'}", f"  UI            {data['ui_url'] or '(none)'}",
        f"  API           {data['api_base']}", f"  endpoints{endpoints}"]))


@ext.command()
@click.argument("name_or_id")
@tenant_option
def enable(name_or_id, tenant):
    """Let the gateway, the UI and schedules reach an install again."""
    _set_enabled(name_or_id, tenant, True)


@ext.command()
@click.argument("name_or_id")
@tenant_option
def disable(name_or_id, tenant):
    """Keep an install but refuse its calls (403) and UI."""
    _set_enabled(name_or_id, tenant, False)


def _set_enabled(ref: str, tenant: str | None, enabled: bool) -> None:
    i = find_install(ref, tenant)
    state().registry.set_enabled(i.id, enabled)
    click.echo(f"{i.name} is {'enabled' if enabled else 'disabled'} for tenant {i.tenant_id}")


@ext.command()
@json_option
@friendly
def samples(as_json):
    """Install the two sample extensions for the default tenant and print how to reach them (make run)."""
    results = [make_installer().install(folder) for folder in installers.SAMPLES]
    handler = next(r for r in results if r.install.name.endswith("sdk-handler"))
    curl = f"curl {state().public_base}/api/ext/{handler.install.name}/hello"
    lines = [f"{r.install.name}: {r.ui_url}" for r in results] + [f"try: {curl}"]
    echo(as_json, {"installs": [r.to_dict() for r in results], "curl": curl}, "\n".join(lines))
