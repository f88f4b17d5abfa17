"""A componentize-py guest (imports WASI p2): sandboxed WASI, stdout/stderr captured with context."""
import time

import pytest
from helpers import GUESTS, decoded_body, execute_body, post_execute, publish

from app import service_of as svc

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def py_guest(module_app):
    store = svc(module_app).settings.bundles.bundle_store_base
    digest = publish(store, "tenant-py", "ext-py", {"dist/main.wasm": (GUESTS / "py-guest.wasm").read_bytes()})
    return {"hash": digest, "client": module_app.test_client(), "app": module_app}


def run(guest, path, **kw):
    doc = execute_body(guest["hash"], path=path, tenant="tenant-py", extension="ext-py", **kw)
    r = post_execute(guest["client"], doc, tenant="tenant-py", extension="ext-py")
    assert r.status_code == 200
    return r.get_json()


def test_stdout_and_stderr_reach_the_debug_stream_with_context(py_guest):
    out = run(py_guest, "/print")
    assert out["status"] == 200, out
    events = svc(py_guest["app"]).executor.debug.recent("tenant-py", "ext-py")
    by_stream = {e["stream"]: e for e in events if "python" in e["message"]}
    assert by_stream["stdout"]["message"] == "hello on stdout from python"
    assert by_stream["stderr"]["message"] == "warning on stderr from python"
    assert by_stream["stderr"]["level"] == "error" and by_stream["stdout"]["level"] == "info"
    assert by_stream["log"]["message"] == "hello from python"
    for event in by_stream.values():
        assert (event["tenant"], event["extension"], event["request"]) == ("tenant-py", "ext-py", "req-1")


def test_wasi_gives_no_environment_and_no_files(py_guest):
    body = decoded_body(run(py_guest, "/"))
    assert body["environ"] == {} and body["tenant"] == "tenant-py"
    assert body["cwd_listing"] == "refused: FileNotFoundError"  # no preopened directory at all
    assert body["secret"] == "error: DENIED"  # host interfaces still gated by capability


def test_timeout_stops_a_python_loop(py_guest):
    started = time.monotonic()
    out = run(py_guest, "/loop", limits={"timeout_ms": 300})
    assert out["error"].startswith("execute_failed: timeout") and time.monotonic() - started < 3
    assert run(py_guest, "/")["status"] == 200
