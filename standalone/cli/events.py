"""The running service's debug events over its Server-Sent Events endpoint, for ``flask ext logs``
without Redis: each service process keeps the recent events of its own executions in memory.

The recent events come from one request with ``?follow=false``; ``--follow`` then holds a stream
open from the last one seen (``Last-Event-ID``, as EventSource does) and reconnects the same way
when the service restarts.
"""
from __future__ import annotations

import json
import time
from collections import deque
from typing import Iterator
from urllib.parse import quote

import click
import requests

RETRY_S = 3.0
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 60.0  # the service writes a keep-alive comment every 15 s


def service_events(base: str, tenant: str, extension: str, limit: int, follow: bool) -> Iterator[dict]:
    url = f"{base.rstrip('/')}/msp/extensions/{quote(extension, safe='')}/events"
    try:
        recent = deque(_events(url, tenant, follow=False, after=None), maxlen=max(limit, 0))
    except requests.RequestException as e:
        raise click.ClickException(f"no service answers at {base} ({type(e).__name__}); start it (make run), "
                                   "pass --url, or set RUNNER_DEBUG_REDIS_URL to read the stream from Redis") from None
    yield from recent
    after = recent[-1]["ts"] if recent else None
    warned = False
    while follow:
        try:
            for event in _events(url, tenant, follow=True, after=after):
                after, warned = event["ts"], False
                yield event
        except requests.RequestException:
            pass
        if not warned:  # the stream ended: the service drains or restarts
            click.echo(f"(the service at {base} went away; reconnecting every {RETRY_S:g} s)", err=True)
            warned = True
        time.sleep(RETRY_S)


def _events(url: str, tenant: str, follow: bool, after: int | None) -> Iterator[dict]:
    headers = {"Accept": "text/event-stream"}
    if after is not None:
        headers["Last-Event-ID"] = str(after)
    with requests.get(url, params={"tenant": tenant, "follow": str(follow).lower()}, headers=headers, stream=True,
                      timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S)) as r:
        if r.status_code == 404:
            raise click.ClickException(f"the service at {url.split('/msp/', 1)[0]} has no such install for tenant "
                                       f"{tenant}: does it use the same registry (EXT_REGISTRY_DB)?")
        if r.status_code != 200:
            raise click.ClickException(f"the service answered {r.status_code} for {url}: {r.text[:200]}")
        yield from parse(r.iter_lines(chunk_size=None, decode_unicode=True))


def parse(lines: Iterator[str]) -> Iterator[dict]:
    """The JSON ``data:`` of each event; comments, ``id:`` and ``retry:`` lines are skipped."""
    data: list[str] = []
    for line in lines:
        if line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif not line and data:
            yield json.loads("\n".join(data))
            data = []
