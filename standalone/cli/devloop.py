"""``flask ext new|dev|call``: the extension developer's loop.

``new`` writes a ready folder, ``dev`` builds (npm), installs and does both again on every
save while the running service serves the result (a failed build leaves the last good
bundle live), ``call`` runs one handler request from the terminal exactly as the gateway
does, in this process.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
import requests
from flask import current_app
from flask.cli import with_appcontext

from runner.pool import ExecutionFailed
from standalone import build as builds
from standalone import scaffold
from standalone.cli.support import (KNOWN_ERRORS, describe, find_install, friendly, json_option, make_installer,
                                    progress, report, state, tenant_option)
from standalone.manifest import DEFAULT_PUBLISHER
from standalone.watcher import changes as watch_changes
from storage.bundles.stores import BundleError


@click.command("new")
@click.argument("name")
@click.option("--template", type=click.Choice(scaffold.KINDS), default="component", show_default=True,
              help="component: TypeScript handler + UI; ui: the UI alone.")
@click.option("--dir", "folder", type=click.Path(file_okay=False), help="Where to write it (default: ./NAME).")
@click.option("--publisher", default=DEFAULT_PUBLISHER, show_default=True, help="The manifest's publisher.")
@click.option("--label", help="The menu label (default: from NAME, com.acme.ticket-sync -> Ticket Sync).")
def new(name, template, folder, publisher, label):
    """Create a ready extension folder NAME (build and install it with: flask ext dev NAME)."""
    try:
        made = scaffold.create(Path(folder or name), name, template, publisher, label)
    except scaffold.ScaffoldError as e:
        raise click.ClickException(str(e)) from None
    what = "npm install, build, install" if template == "component" else "install"
    steps = [f"flask --app app ext dev {made.folder}   # {what}; again on every save"]
    if template == "component":
        steps.append(f"flask --app app ext call {name} /hello")
    steps.append("open the host page: http://127.0.0.1:8085/msp/extensions (make run)")
    click.echo(f"created the {template} extension {name} in {made.folder} ({len(made.files)} files); next:\n"
               + "\n".join(f"  {step}" for step in steps))


@click.command()
@with_appcontext
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@tenant_option
@click.option("--interval", default=0.5, show_default=True, help="Seconds a burst of changes may take.")
def dev(path, tenant, interval):
    """Build (npm run build, after npm install when node_modules is missing) and install PATH, then again
    on every change; a failed build keeps the last good bundle live."""
    shown = progress()
    installer = make_installer(shown)
    changes = watch_changes(path, builds.has_build(path), interval)
    _rebuild(path, tenant, installer, shown)
    _say_where_it_is_served()
    click.echo(f"watching {path} for changes (Ctrl-C to stop)", err=True)
    try:
        for changed in changes:
            click.echo(f"changed: {', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}", err=True)
            _rebuild(path, tenant, installer, shown)
    except KeyboardInterrupt:
        click.echo("stopped", err=True)


def _rebuild(path: str, tenant: str | None, installer, shown) -> None:
    """One round: build, install, and a line with the result and its time. Errors keep the loop going."""
    started = time.monotonic()
    try:
        builds.build(path, shown)
        result = installer.install(path, tenant)
    except KNOWN_ERRORS as e:  # the next save may fix it
        click.echo(f"error: {describe(e)}", err=True)
        click.echo(f"✗ not installed ({time.monotonic() - started:.1f} s); the last good bundle stays live", err=True)
        return
    report(result, False)
    state_text = "installed" if result.changed else "unchanged"
    click.echo(f"✓ {state_text} in {time.monotonic() - started:.1f} s: {result.install.name} "
               f"{result.install.version} {result.install.content_hash}", err=True)


def _say_where_it_is_served() -> None:
    base = state().public_base
    try:
        requests.get(f"{base}/livez", timeout=1)
    except requests.RequestException:
        click.echo(f"note: no service answers at {base}: start it (make run) to call the extension", err=True)
        return
    click.echo(f"served by the running service: {base}/msp/extensions", err=True)


@click.command()
@with_appcontext
@click.argument("name_or_id")
@click.argument("path")
@click.option("--method", "-X", default="GET", show_default=True, help="HTTP method.")
@click.option("--data", "-d", help="Request body; @FILE reads a file, @- standard input.")
@click.option("--header", "-H", "headers", multiple=True, help="'Name: value' (repeatable).")
@tenant_option
@json_option
@friendly
def call(name_or_id, path, method, data, headers, tenant, as_json):
    """Call PATH of an installed extension's handler as the gateway does (/api/ext/...), in this process;
    prints the status and headers (stderr) and the body (stdout)."""
    st = state()
    if st.host_page is None:
        raise click.ClickException("ext call needs standalone mode (REGISTRY_BASE_URL is set: the Alga server "
                                   "runs the gateway)")
    install = find_install(name_or_id, tenant)
    request_headers = {"x-alga-tenant": install.tenant_id, **_headers(headers)}
    body = _body(data)
    started_here = not st.lifecycle.started
    st.lifecycle.start(without=(st.scheduler,))  # the worker pool; the schedules belong to the service
    try:
        if install.hash_hex:  # compiled once per bundle: show it, as ext install does
            try:
                st.executor.warm(install.tenant_id, install.registry_id, install.hash_hex, progress())
            except (BundleError, ExecutionFailed) as e:  # the gateway's answer below says the same
                click.echo(f"warning: the component could not be prepared: {getattr(e, 'reason', e)}", err=True)
        answer = current_app.test_client().open(f"/api/ext/{install.registry_id}/{path.lstrip('/')}",
                                                method=method.upper(), data=body, headers=request_headers)
    finally:
        if started_here:  # an app that serves requests too (tests, flask shell) keeps its pool
            st.lifecycle.stop()
    _print_answer(answer, as_json)


def _headers(raw: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in raw:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(f"{item!r} is not 'Name: value'", param_hint="--header")
        out[name.strip()] = value.strip()
    return out


def _body(data: str | None) -> bytes | None:
    if data is None:
        return None
    if data == "@-":
        return sys.stdin.buffer.read()
    if data.startswith("@"):
        try:
            return Path(data[1:]).read_bytes()
        except OSError as e:
            raise click.BadParameter(f"cannot read {data[1:]}: {e.strerror}", param_hint="--data") from None
    return data.encode("utf-8")


def _print_answer(answer, as_json: bool) -> None:
    body = answer.get_data()
    if as_json:
        text = body.decode("utf-8", "replace")
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = text
        headers = {name.lower(): value for name, value in answer.headers.items()}
        click.echo(json.dumps({"status": answer.status_code, "headers": headers, "body": parsed}, indent=2))
        return
    click.echo(f"HTTP {answer.status}", err=True)
    for name, value in answer.headers.items():
        click.echo(f"{name.lower()}: {value}", err=True)
    click.echo("", err=True)
    out = sys.stdout.buffer
    out.write(body)
    if body and not body.endswith(b"\n") and out.isatty():
        out.write(b"\n")
    out.flush()
