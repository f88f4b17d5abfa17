"""Manual invoices of the standalone registry (the internal API's ``invoicing`` area)."""
from __future__ import annotations

from typing import Any

import sqlite_utils

STANDALONE = "invoicing is not available in standalone mode"


def handle(db: sqlite_utils.Database, tenant: str, install: str, body: dict) -> tuple[int, Any]:
    return 200, {"success": False, "error": STANDALONE}
