"""The standalone host page: extensions in a sidebar, their UI in a sandboxed iframe, the bridge, a debug console."""
