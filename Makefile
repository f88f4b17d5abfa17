# make run   : virtualenv + install + start the service on embedded defaults (port 8085)
# make test  : system packages + virtualenv + the whole test suite
# make bench / make soak : benchmarks (figures, never asserted) / the 10-minute soak
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PORT   ?= 8085
# Loopback unless asked otherwise, also inside a dev container (where the service's own default is 0.0.0.0).
HOST   ?= 127.0.0.1
APT_PACKAGES := redis-server nginx wrk chromium
# The image tests (tests/test_image.py) build and run the container with podman.
CONTAINER_PACKAGES := podman runc mmdebstrap uidmap fuse-overlayfs slirp4netns
APT_PACKAGES += $(CONTAINER_PACKAGES)
IMAGE ?= localhost/alga-ext-runner:dev

.PHONY: run test test-quick bench soak compare profile guests system-deps clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (set PYTHON=...)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	@mkdir -p var
	EXT_INSTALL_SAMPLES=$${EXT_INSTALL_SAMPLES:-true} HOST=$(HOST) PORT=$(PORT) \
		$(VENV)/bin/gunicorn -c gunicorn.conf.py 'app:create_app()'

# System packages the tests use (real redis-server, nginx for the benchmark, Chromium for pages).
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

test: system-deps $(STAMP)
	$(PY) -m pytest -q

test-quick: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	@touch $(BENCH_STAMP)

# Not part of `make test`: benchmarks are measured side by side and printed, never asserted.
bench: system-deps $(BENCH_STAMP)
	$(PY) bench/run.py

# 10 minutes of mixed load with a worker killed and a store outage (SOAK_SECONDS to change); not in `make test`
soak: $(STAMP)
	$(PY) bench/soak.py

# This tree against another revision, interleaved under the same load: make compare REV=main
REV ?= main
compare: system-deps $(BENCH_STAMP)
	$(PY) bench/compare.py $(REV)

# Flame graphs of the Gunicorn process and a worker under wrk: make profile ARGS="sdk 1"
profile: system-deps $(BENCH_STAMP)
	$(PY) bench/profile.py $(ARGS)

guests:
	tests/fixtures/guests/build.sh

clean:
	rm -rf var .pytest_cache

# The OCI image (Containerfile): podman here (deploy/podman-env.sh sets it up for this machine,
# on a local mmdebstrap base), docker where only that is present. See the README, "Deploy".
.PHONY: image image-run container-deps
# podman and friends through apt, unless this machine has a running docker engine and no podman.
container-deps:
	@if command -v podman >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory system-deps APT_PACKAGES="$(CONTAINER_PACKAGES)"; fi

image: container-deps
	IMAGE=$(IMAGE) deploy/image.sh build

# Like `make run`, in the container: samples installed, 127.0.0.1:$(PORT), cache in a named volume.
image-run: image
	IMAGE=$(IMAGE) PORT=$(PORT) deploy/image.sh run
