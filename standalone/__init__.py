"""Standalone mode: what replaces the Alga app, Postgres and MinIO when no Alga server is attached.

The SQLite registry's admin commands (``flask ext``), the gateway routes, the scheduler loop,
the installer and the host page; wiring.py puts them into an app. Depends on every other
package; nothing depends on it.
"""
