"""alga:extension/context: the execution's identity."""
from __future__ import annotations

from runner.host.call import CallContext
from runner.host.values import record


class CapabilityNotGranted(Exception):
    """cap:context.read is a default grant; the reference panics without it, we trap."""


def get_context(ctx: CallContext):
    if not ctx.allows("cap:context.read"):
        raise CapabilityNotGranted("capability_not_granted: cap:context.read")
    return record(request_id=ctx.request_id, tenant_id=ctx.tenant_id, extension_id=ctx.extension_id,
                  install_id=ctx.install_id, version_id=ctx.version_id)


INTERFACES = {"alga:extension/context": {"get-context": get_context}}
