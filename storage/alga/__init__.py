"""Attached mode: clients of the Alga server, where installs and extension data live then."""
