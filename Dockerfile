# syntax=docker/dockerfile:1
# The Alga extension runner: Gunicorn (gevent, gunicorn.conf.py) and its wasm worker pool,
# listening on 0.0.0.0:8080 like the reference image. Also a valid Dockerfile: `Dockerfile` is a
# byte-for-byte copy, for tools that only look for that name (Alga's docker-compose.runner-dev.yml
# names it); a test keeps the two equal. Edit Containerfile, then: cp Containerfile Dockerfile
#
#   make image                     podman (or docker) build, tagged localhost/alga-ext-runner:dev
#   docker build -f Containerfile -t alga-ext-runner .
#
# BASE_IMAGE: a Debian bookworm image with Python 3.11 and its venv module, used by both stages
# (the virtualenv points at the base's interpreter). The default is the Python project's slim
# image; where no registry is reachable, deploy/podman-env.sh builds localhost/debian-base:bookworm
# with mmdebstrap and `make image` uses it.
#
# pip reaches PyPI through the build's own network. Behind a TLS-intercepting proxy give it the
# host's CA bundle as a build secret, never baked into a layer:
#   podman build --secret id=hostca,src=/etc/ssl/certs/ca-certificates.crt ...
ARG BASE_IMAGE=docker.io/library/python:3.11.14-slim-bookworm

# --- build: the virtualenv with every dependency pinned (pyproject.toml + deploy/constraints.txt)
FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml deploy/constraints.txt ./
# Only the run-time dependencies (no test extras, no node: the guests arrive compiled in bundles).
# Removed afterwards: pip and setuptools (nothing installs packages at run time), gevent's own test
# suite, and zstandard's CFFI backend (12 MB; its C backend is the one imported).
RUN --mount=type=secret,id=hostca,required=false \
    if [ -s /run/secrets/hostca ]; then export PIP_CERT=/run/secrets/hostca; fi \
    && python3 -m venv /opt/venv \
    && python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > requirements.txt \
    && /opt/venv/bin/pip install --quiet --only-binary=:all: -r requirements.txt -c constraints.txt \
    && /opt/venv/bin/pip uninstall --quiet --yes pip setuptools \
    && rm -rf /opt/venv/lib/python3.11/site-packages/gevent/tests \
              /opt/venv/lib/python3.11/site-packages/zstandard/_cffi.*.so

# --- runtime
FROM ${BASE_IMAGE}
ARG UID=10001
# A fixed numeric user, so Kubernetes' runAsNonRoot can check it.
RUN groupadd --system --gid "${UID}" runner \
    && useradd --system --uid "${UID}" --gid "${UID}" --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin runner
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY app.py settings.py openapi.py gunicorn.conf.py ./
COPY service/ service/
COPY runner/ runner/
COPY storage/ storage/
COPY static_cache/ static_cache/
COPY standalone/ standalone/
COPY migrations/ migrations/
COPY samples/ samples/
COPY deploy/create_bucket.py deploy/
COPY deploy/entrypoint.sh /usr/local/bin/runner-entrypoint
# Byte-code compiled now: the root file system may be read-only at run time.
# /app/var: the standalone SQLite registry and secrets key; /app/tmp-ext: the bundle and
# compiled-component cache (the folder Alga's compose file mounts). Both belong to the runner.
RUN /opt/venv/bin/python -m compileall -q /app \
    && mkdir -p /app/var /app/tmp-ext \
    && chown "${UID}:${UID}" /app/var /app/tmp-ext

ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8080 \
    EXT_CACHE_ROOT=/app/tmp-ext
USER ${UID}:${UID}
EXPOSE 8080
# Liveness only (/readyz also checks the bundle store, which may be down without this container
# being broken). The first start may install the samples and compile them: hence the start period.
HEALTHCHECK --interval=15s --timeout=3s --start-period=90s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/livez' % os.environ.get('PORT', '8080'), timeout=2)"]
# Gunicorn's graceful stop: workers finish in-flight requests (graceful_timeout 30 s) and
# /readyz fails while they drain. Give `docker stop`/Kubernetes at least 35 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/runner-entrypoint"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"]
