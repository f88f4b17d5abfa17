"""Host side of the 12 alga:extension interfaces, one module per concern.

``HOST_MODULES`` is the only list of them: runner/worker/linker.py defines every
function each module exports in its ``INTERFACES`` mapping
(interface name -> {WIT function name -> fn(ctx, *args)}). Helper modules
(call, values, catalogue) export no interfaces.
"""
from runner.worker.host import (clients, context, http, invoicing, logging, scheduler, secrets, services, storage,
                         ui_proxy, user)

HOST_MODULES = (context, secrets, http, storage, logging, ui_proxy, user, scheduler, invoicing, clients, services)
