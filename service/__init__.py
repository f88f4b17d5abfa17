"""What every package of the service stands on: typed settings, logs, metrics, JSON errors and the
lifecycle of background work. Imports no other package of the project."""
