#!/usr/bin/env bash
# Podman set up for this project, shared by `make image`, `make image-run` and the tests.
#
#   deploy/podman-env.sh env           print `export` lines: eval "$(deploy/podman-env.sh env)"
#   deploy/podman-env.sh base          make sure the local base image exists (built once, cached); print its name
#   deploy/podman-env.sh podman ARG..  run podman with this configuration
#
# Configuration: deploy/podman/containers.conf (runtime runc, ulimits, host network) and a
# storage.conf written next to the image store. The store and the base image's root file system
# live in $ALGA_PODMAN_ROOT (default ~/.cache/alga-ext-runner/podman), outside the work tree, so
# every worktree, `make clean` and CI runs on the same machine reuse them.
#
# No registry is reachable here, so the base image is a Debian bookworm root file system made by
# mmdebstrap from the apt sources this machine already uses, imported as $BASE_IMAGE. Its cache key
# is the recipe below: change the recipe and it is built again.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="${ALGA_PODMAN_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/alga-ext-runner/podman}"
BASE_IMAGE="${BASE_IMAGE:-localhost/debian-base:bookworm}"
SOURCES="${DEBIAN_SOURCES:-/etc/apt/sources.list.d/debian.sources}"
# What the Containerfile needs from its base: python3 with venv (pip inside) and CA certificates.
BASE_PACKAGES="python3,python3-venv,ca-certificates"
# The merged-usr hook sets up /usr the way bookworm expects without the usrmerge package (which
# pulls in perl, 50 MB); docs, man pages and translations are left out.
BASE_RECIPE="mmdebstrap --variant=apt --include=$BASE_PACKAGES --hook-dir=merged-usr --no-docs bookworm"

export CONTAINERS_CONF="$HERE/podman/containers.conf"
export CONTAINERS_STORAGE_CONF="$ROOT/storage.conf"

setup() {
    mkdir -p "$ROOT/storage" "$ROOT/run"
    local conf
    conf=$(printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' "$ROOT/storage" "$ROOT/run")
    if [ ! -f "$CONTAINERS_STORAGE_CONF" ] || [ "$(cat "$CONTAINERS_STORAGE_CONF")" != "$conf" ]; then
        printf '%s\n' "$conf" > "$CONTAINERS_STORAGE_CONF"
    fi
    command -v podman >/dev/null || { echo "podman is not installed (make system-deps installs it)" >&2; exit 1; }
}

base() {
    setup
    local key tar
    key=$(printf '%s\n' "$BASE_RECIPE" | sha256sum | cut -c1-12)
    tar="$ROOT/debian-base-$key.tar"
    if podman image exists "$BASE_IMAGE" \
        && [ "$(podman image inspect --format '{{ index .Labels "alga.base-recipe" }}' "$BASE_IMAGE")" = "$key" ]; then
        echo "$BASE_IMAGE"
        return
    fi
    if [ ! -s "$tar" ]; then
        echo "building the base root file system ($BASE_RECIPE) ..." >&2
        mmdebstrap --quiet --format=tar --variant=apt --include="$BASE_PACKAGES" \
            --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
            --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
            --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
            bookworm "$tar.part" "$SOURCES" >&2
        mv "$tar.part" "$tar"
    fi
    podman import --quiet --change 'CMD ["/bin/bash"]' --change "LABEL alga.base-recipe=$key" \
        "$tar" "$BASE_IMAGE" >/dev/null
    echo "$BASE_IMAGE"
}

case "${1:-}" in
    env)
        printf 'export CONTAINERS_CONF=%q\nexport CONTAINERS_STORAGE_CONF=%q\n' "$CONTAINERS_CONF" "$CONTAINERS_STORAGE_CONF" ;;
    base)
        base ;;
    podman)
        shift; setup; exec podman "$@" ;;
    *)
        sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
