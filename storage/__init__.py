"""Where bytes and state live: bundles/ (archives, extraction cache), registry/ (the standalone
SQLite registry), alga/ (the Alga server, in attached mode) and api.py (the seam between them)."""
