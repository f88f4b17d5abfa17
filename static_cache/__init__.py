"""Serving extracted extension UIs: /ext-ui/<extension>/<hash>/<path>."""
