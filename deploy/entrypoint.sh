#!/bin/sh
# Container entry point: one check on what the platform hands us, then exec the command
# (Gunicorn by default) so it is PID 1 and gets SIGTERM directly. (A HOST that holds a URL, as
# Alga's compose.env sets, needs nothing here: the service's settings ignore it and listen on
# 0.0.0.0 inside a container; service/settings.py.)
set -eu

# EXT_CACHE_ROOT (/app/tmp-ext) is often a bind mount that the engine created as root
# (docker compose does for ./tmp-ext), which this non-root user cannot write. Run on a
# private cache then, and say how to keep it across restarts.
cache="${EXT_CACHE_ROOT:-/app/tmp-ext}"
mkdir -p "$cache" 2>/dev/null || true
probe="$cache/.write-probe-$$"
if ( : > "$probe" ) 2>/dev/null; then
    rm -f "$probe"
else
    fallback="${TMPDIR:-/tmp}/ext-cache"
    echo "entrypoint: $cache is not writable by uid $(id -u); using $fallback (not kept across restarts)." \
         "Make the volume writable for uid $(id -u) (e.g. chown $(id -u) ./tmp-ext) to keep compiled components." >&2
    mkdir -p "$fallback"
    export EXT_CACHE_ROOT="$fallback"
fi

exec "$@"
