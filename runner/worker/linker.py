"""Builds the component Linker once per engine, from runner.worker.host.HOST_MODULES."""
from __future__ import annotations

import logging

import wasmtime
from wasmtime.component import Linker

from runner.worker.host import HOST_MODULES

log = logging.getLogger(__name__)


def build_linker(engine: wasmtime.Engine) -> Linker:
    """Every alga:extension function, plus WASI p2 (no network, env or files).

    wasi:http is never linked, so no guest can get around the egress policy.
    """
    linker = Linker(engine)
    linker.add_wasip2()
    with linker.root() as root:
        for module in HOST_MODULES:
            for interface, functions in module.INTERFACES.items():
                with root.add_instance(interface) as instance:
                    for name, fn in functions.items():
                        instance.add_func(name, _bind(interface, name, fn))
    return linker


def _bind(interface: str, name: str, fn):
    """Adapt ``fn(ctx, *args)`` to wasmtime's ``f(store, *args)``."""
    where = f"{interface.rsplit('/', 1)[-1]}.{name}"

    def host_function(store, *args):
        ctx = wasmtime.Store.data(store)
        try:
            return fn(ctx, *args)
        except Exception as e:
            # An exception traps the guest; the worker reports execute_failed.
            log.error("host function %s failed: %s", where, e, extra=ctx.log_extra if ctx else {})
            raise HostFunctionError(f"host function {where} failed: {e}") from e

    host_function.__name__ = where
    return host_function


class HostFunctionError(Exception):
    pass
