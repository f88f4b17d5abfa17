"""RUNTIME_LIMITS (the reference deployment's JSON default limits) beside the per-request limits and
EXT_DEFAULT_*: the request wins, then RUNTIME_LIMITS, then EXT_DEFAULT_*; EXT_MAX_TIMEOUT_MS caps all."""
import pytest
from helpers import execute_body, post_execute, publish

from app import service_of as svc
from runner.settings import DefaultLimits
from settings import Settings

KNATIVE = '{"memory_mb":512,"timeout_ms":5000,"fuel":null}'  # as ee/runner/deploy/runner.kservice.yaml


def runner(**env):
    return Settings.from_env(env).runner


def test_the_reference_deployments_value_is_read():
    assert runner(RUNTIME_LIMITS=KNATIVE).runtime_limits == DefaultLimits(timeout_ms=5000, memory_mb=512, fuel=None)


@pytest.mark.parametrize("raw", ['{"timeout_ms": -1}', '{"memory": 1}', "[1]", "{", '{"fuel": true}'])
def test_an_invalid_value_is_ignored_with_a_warning(raw, caplog):
    assert runner(RUNTIME_LIMITS=raw).runtime_limits == DefaultLimits()
    assert "RUNTIME_LIMITS" in caplog.text


def test_precedence():
    s = runner(RUNTIME_LIMITS='{"timeout_ms": 5000, "fuel": 1000}', EXT_DEFAULT_TIMEOUT_MS="7000",
               EXT_DEFAULT_MEMORY_MB="128", EXT_MAX_TIMEOUT_MS="60000")
    assert s.limits_for(None, None, None) == (5000, 128, 1000)  # RUNTIME_LIMITS, then EXT_DEFAULT_*
    assert s.limits_for(100, 64, 5) == (100, 64, 5)  # the request's own limits win
    assert s.limits_for(10**12, 10**12, None) == (60000, 4096, 1000)  # capped
    assert runner().limits_for(None, None, None) == (30000, 256, None)  # neither set: EXT_DEFAULT_*


def test_a_request_without_limits_runs_with_runtime_limits(make_app, mini_wasm):
    app = make_app(workers=1, runtime_limits=DefaultLimits(timeout_ms=150))
    digest = publish(svc(app).settings.bundles.bundle_store_base, "tenant-a", "ext-a", {"dist/main.wasm": mini_wasm})
    doc = execute_body(digest, path="/loop")
    del doc["limits"]
    out = post_execute(app.test_client(), doc).get_json()
    assert out["error"] == "execute_failed: timeout: the handler ran longer than 150 ms"
    doc["limits"] = {"timeout_ms": 50}
    assert post_execute(app.test_client(), doc).get_json()["error"].endswith("longer than 50 ms")
