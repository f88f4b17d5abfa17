"""``flask ext`` commands for an install's data and for tenants: config, secrets, tenants, seed, invoices, logs."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import click
from flask.cli import AppGroup, with_appcontext

from runner.settings import redis_url
from runner.debug.stream import stream_key
from standalone import seed as seeds
from standalone.cli.events import service_events
from standalone.cli.support import (default_tenant, echo, find_install, friendly, json_option, state,
                                    tenant_option)
from storage.registry import invoices as invoice_store


@click.group(cls=AppGroup)
def config():
    """Install config: strings the extension receives as context.config."""


@config.command("set")
@click.argument("name_or_id")
@click.argument("key")
@click.argument("value")
@tenant_option
def config_set(name_or_id, key, value, tenant):
    i = find_install(name_or_id, tenant)
    state().registry.update_config(i, {key: value})
    click.echo(f"set {key} for {i.name}")


@config.command("get")
@click.argument("name_or_id")
@click.argument("key", required=False)
@tenant_option
@json_option
def config_get(name_or_id, key, tenant, as_json):
    i = find_install(name_or_id, tenant)
    if key is None:
        echo(as_json, i.config, "\n".join(f"{k}={v}" for k, v in sorted(i.config.items())))
    elif key not in i.config:
        raise click.ClickException(f"{i.name} has no config key {key!r}; set it with: flask ext config set")
    else:
        echo(as_json, {key: i.config[key]}, i.config[key])


@config.command("unset")
@click.argument("name_or_id")
@click.argument("key")
@tenant_option
def config_unset(name_or_id, key, tenant):
    i = find_install(name_or_id, tenant)
    state().registry.update_config(i, {}, removed=(key,))
    click.echo(f"unset {key} for {i.name}")


@click.group(cls=AppGroup)
def secrets():
    """Install secrets, encrypted at rest (EXT_SECRETS_KEY_FILE); values are never printed."""


@secrets.command("set")
@click.argument("name_or_id")
@click.argument("key")
@click.option("--value", prompt=True, hide_input=True, help="The value (prompted for, hidden, when not given).")
@tenant_option
@friendly
def secrets_set(name_or_id, key, value, tenant):
    i = find_install(name_or_id, tenant)
    state().secrets.set(i, key, value)
    click.echo(f"stored secret {key} for {i.name}")


@secrets.command("list")
@click.argument("name_or_id")
@tenant_option
@json_option
@friendly
def secrets_list(name_or_id, tenant, as_json):
    names = state().secrets.names(find_install(name_or_id, tenant))
    echo(as_json, names, "\n".join(names) or "(no secrets)")


@secrets.command("rm")
@click.argument("name_or_id")
@click.argument("key")
@tenant_option
@friendly
def secrets_rm(name_or_id, key, tenant):
    i = find_install(name_or_id, tenant)
    if not state().secrets.remove(i, key):
        raise click.ClickException(f"{i.name} has no secret {key!r}; see: flask ext secrets list {i.name}")
    click.echo(f"removed secret {key} from {i.name}")


@click.group(cls=AppGroup)
def tenants():
    """Tenants of the standalone registry (the default one is created automatically)."""


@tenants.command("create")
@click.argument("tenant_id")
@click.option("--name", help="Display name (default: the id).")
@json_option
@friendly
def tenants_create(tenant_id, name, as_json):
    t = state().registry.create_tenant(tenant_id, name or tenant_id)
    echo(as_json, vars(t), f"created tenant {t.id} ({t.name})")


@tenants.command("list")
@json_option
def tenants_list(as_json):
    found = state().registry.tenants()
    echo(as_json, [vars(t) for t in found], "\n".join(f"{t.id}  {t.name}" for t in found))


@click.command()
@with_appcontext
@click.argument("file", type=click.File("r"))
@friendly
def seed(file):
    """Load clients and services for the host API: {"tenant", "clients": [...], "services": [...]}."""
    try:
        doc = json.load(file)
    except ValueError as e:
        raise click.ClickException(f"{file.name} is not valid JSON: {e}") from None
    for part in seeds.parse(doc, state().default_tenant):
        seeds.write(state().registry, part)
        click.echo(f"tenant {part.tenant}: {len(part.clients)} client(s), {len(part.services)} service(s)")


@click.group(cls=AppGroup)
def invoices():
    """Manual invoices extensions made with the invoicing host API (amounts in minor units)."""


@invoices.command("list")
@tenant_option
@json_option
def invoices_list(tenant, as_json):
    found = invoice_store.list_invoices(state().registry.db, default_tenant(tenant))
    echo(as_json, found, "\n".join(
        f"{i['number']}  {i['status']:<6} {i['invoice_date']}  client {i['client_id']}  "
        f"subtotal {i['subtotal']}  tax {i['tax']}  total {i['total']}" for i in found) or "no invoices")


@invoices.command("show")
@click.argument("number_or_id")
@tenant_option
@json_option
def invoices_show(number_or_id, tenant, as_json):
    tenant = default_tenant(tenant)
    invoice = invoice_store.get_invoice(state().registry.db, tenant, number_or_id)
    if invoice is None:
        raise click.ClickException(f"no invoice {number_or_id!r} for tenant {tenant}; see: flask ext invoices list")
    lines = [f"{invoice['number']} ({invoice['status']}) id {invoice['id']}",
             f"  client {invoice['client_id']}  date {invoice['invoice_date']}  due {invoice['due_date']}"
             f"  PO {invoice['po_number'] or '-'}  install {invoice['install_id']}"]
    for c in invoice["charges"]:
        kind = f" ({c['discount_type']} discount)" if c["is_discount"] else ""
        lines.append(f"  {c['quantity']:g} x {c['unit_price']}  {c['description']}{kind}: net {c['net_amount']}"
                     f"  tax {c['tax_amount']} at {c['tax_rate']:g}%")
    lines.append(f"  subtotal {invoice['subtotal']}  tax {invoice['tax']}  total {invoice['total']}")
    echo(as_json, invoice, "\n".join(lines))


@click.command()
@with_appcontext
@click.argument("name_or_id")
@tenant_option
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events as they come.")
@click.option("--limit", "-n", default=100, show_default=True, help="How many recent events to print.")
@click.option("--url", help="The running service (default: http://HOST:PORT), when RUNNER_DEBUG_REDIS_URL is unset.")
@json_option
def logs(name_or_id, tenant, follow, limit, url, as_json):
    """The extension's debug stream: guest log lines, stdout/stderr and failures.

    Read from Redis when RUNNER_DEBUG_REDIS_URL is set, else from the running service's event
    stream (/msp/extensions/<id>/events), which keeps the recent events of its own executions."""
    i = find_install(name_or_id, tenant)
    settings = state().runner
    if settings.debug_redis_url:
        key = stream_key(settings.debug_stream_prefix, i.tenant_id, i.registry_id)
        events = _redis_events(settings, key, limit, follow)
    else:
        events = service_events(url or state().public_base, i.tenant_id, i.registry_id, limit, follow)
    try:
        for event in events:
            _print_event(event, as_json)
    except KeyboardInterrupt:
        pass


def _redis_events(settings, key: str, limit: int, follow: bool):
    """The last ``limit`` events of the stream (XREVRANGE), then new ones as they come (XREAD BLOCK)."""
    import redis  # noqa: PLC0415 (only this command needs it)

    url = redis_url(settings.debug_redis_url, settings.debug_redis_password)
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        entries = client.xrevrange(key, count=limit)[::-1]
        yield from (fields for _, fields in entries)
        last = entries[-1][0] if entries else "$"
        while follow:
            for _, items in client.xread({key: last}, block=5000, count=100) or []:
                for last, fields in items:
                    yield fields
    except redis.RedisError as e:
        raise click.ClickException(f"cannot read the debug stream from Redis ({e}); check RUNNER_DEBUG_REDIS_URL "
                                   "and RUNNER_DEBUG_REDIS_PASSWORD") from None


def _print_event(event: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(event))
        return
    ts = datetime.fromtimestamp(int(event.get("ts", 0)) / 1000, timezone.utc).strftime("%H:%M:%S.%f")[:-3]
    request = f" {event['request']}" if event.get("request") else ""
    level, stream = event.get("level", "info"), event.get("stream", "log")
    click.echo(f"{ts} {level:5} [{stream}]{request} {event.get('message', '')}")
