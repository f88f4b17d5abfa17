"""Durable state and bytes: bundle store, extraction cache, registry."""
