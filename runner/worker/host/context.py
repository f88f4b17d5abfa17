"""alga:extension/context: the execution's identity."""
from __future__ import annotations

from runner.worker.host.call import CallContext
from runner.worker.host.values import record


class CapabilityNotGranted(Exception):
    """cap:context.read is a default grant; the reference panics without it, we trap."""


def get_context(ctx: CallContext):
    if not ctx.allows("cap:context.read"):
        raise CapabilityNotGranted("capability_not_granted: cap:context.read")
    return record(request_id=ctx.ids.request, tenant_id=ctx.ids.tenant, extension_id=ctx.ids.extension,
                  install_id=ctx.ids.install, version_id=ctx.ids.version)


INTERFACES = {"alga:extension/context": {"get-context": get_context}}
