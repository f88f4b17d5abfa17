#!/usr/bin/env bash
# Build and run the runner image with whichever engine this machine has.
#
#   deploy/image.sh engine             print the engine used: podman if installed, else docker
#   deploy/image.sh build [TAG]        build Containerfile (default tag $IMAGE)
#   deploy/image.sh run [TAG] [ARG..]  run it in the foreground on embedded defaults with the samples
#                                      installed, like `make run` (127.0.0.1:$PORT); extra ARGs go
#                                      to `podman run`/`docker run` before the image name
#
# Podman runs with this project's configuration (deploy/podman-env.sh: runc, ulimits, host network)
# and, unless BASE_IMAGE is set, on the local mmdebstrap base (no registry is reachable here).
# Docker uses the Containerfile's default base. The host's CA bundle reaches pip as a build
# secret when the file exists (TLS interception); it is never part of a layer.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
IMAGE="${IMAGE:-localhost/alga-ext-runner:dev}"
PORT="${PORT:-8085}"
HOST_CA="${HOST_CA:-/etc/ssl/certs/ca-certificates.crt}"
CACHE_VOLUME="${CACHE_VOLUME:-alga-ext-runner-cache}"

engine() {
    if [ -n "${CONTAINER_ENGINE:-}" ]; then echo "$CONTAINER_ENGINE"
    elif command -v podman >/dev/null 2>&1; then echo podman
    elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then echo docker
    else echo "neither podman nor a running docker engine was found (make system-deps installs podman)" >&2; exit 1
    fi
}

build() {
    local tag="${1:-$IMAGE}"
    local args=(-f Containerfile -t "$tag")
    [ -r "$HOST_CA" ] && args+=(--secret "id=hostca,src=$HOST_CA")
    case "$(engine)" in
        podman)
            local base="${BASE_IMAGE:-$(deploy/podman-env.sh base)}"
            # docker format: the OCI format has no HEALTHCHECK
            deploy/podman-env.sh podman build --format docker --network host \
                --build-arg "BASE_IMAGE=$base" "${args[@]}" .
            # Older untagged images (earlier builds, their build stages) go after a week; newer
            # ones stay, as the layer cache of the next build.
            deploy/podman-env.sh podman image prune --force --filter until=168h >/dev/null ;;
        docker)
            [ -n "${BASE_IMAGE:-}" ] && args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
            DOCKER_BUILDKIT=1 docker build "${args[@]}" . ;;
    esac
}

run() {
    local tag="${1:-$IMAGE}"
    [ $# -gt 0 ] && shift
    local env=(-e EXT_INSTALL_SAMPLES="${EXT_INSTALL_SAMPLES:-true}" -v "$CACHE_VOLUME:/app/tmp-ext")
    case "$(engine)" in
        podman)  # host network here: bind loopback only, on make run's port
            exec deploy/podman-env.sh podman run --rm --network host -e HOST=127.0.0.1 -e PORT="$PORT" \
                "${env[@]}" "$@" "$tag" ;;
        docker)
            exec docker run --rm -p "127.0.0.1:$PORT:8080" "${env[@]}" "$@" "$tag" ;;
    esac
}

case "${1:-}" in
    engine) engine ;;
    build) shift; build "$@" ;;
    run) shift; run "$@" ;;
    *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
