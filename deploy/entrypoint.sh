#!/bin/sh
# Container entry point: two checks on what the platform hands us, then exec the command
# (Gunicorn by default) so it is PID 1 and gets SIGTERM directly.
set -eu

# HOST is the listen address. Some stacks set HOST to a URL for other services (Alga's
# compose.env does); Gunicorn cannot bind to that, so listen on every address instead.
case "${HOST:-}" in
    *://*|*/*)
        echo "entrypoint: HOST=$HOST is not an address; listening on 0.0.0.0" >&2
        export HOST=0.0.0.0 ;;
esac

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
