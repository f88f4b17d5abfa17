"""Fair queueing between tenants and extensions: the policy alone (runner/fairness.py, with
hypothesis), then the real pool with worker processes and the WAT component."""
from __future__ import annotations

import concurrent.futures
import time

import pytest
from helpers import execute_body, post_execute, publish
from hypothesis import given, settings
from hypothesis import strategies as st

from app import service_of as svc
from runner.fairness import FairQueues
from service import metrics

KEYS = [("t1", "e1"), ("t1", "e2"), ("t2", "e1"), ("t3", "e9")]


def test_round_robin_across_queues_and_fifo_within_one():
    q = FairQueues(max_per_extension=10, max_per_tenant=10, queue_size=10)
    for i in range(3):
        q.push(("a", "x"), f"a{i}")
    q.push(("b", "x"), "b0")
    q.push(("c", "x"), "c0")
    order = [q.next_ready()[1] for _ in range(5)]
    assert order == ["a0", "b0", "c0", "a1", "a2"]
    assert q.next_ready() is None


def test_caps_hold_back_a_queue_and_release_it():
    q = FairQueues(max_per_extension=1, max_per_tenant=2, queue_size=10)
    q.started(("a", "x"))
    q.started(("a", "z"))
    q.push(("a", "x"), "a-x")
    q.push(("a", "y"), "a-y")
    assert not q.may_start_now(("a", "x")) and q.may_start_now(("b", "x"))
    assert q.next_ready() is None  # tenant a holds 2 of 2
    q.finished(("a", "z"))
    assert q.next_ready() == (("a", "y"), "a-y")  # a/x is still at its extension cap
    q.started(("a", "y"))
    q.finished(("a", "x"))
    assert q.next_ready() == (("a", "x"), "a-x")


def test_a_full_queue_refuses_only_its_own_key():
    q = FairQueues(max_per_extension=1, max_per_tenant=1, queue_size=2)
    assert q.push(KEYS[0], 1) and q.push(KEYS[0], 2) and not q.push(KEYS[0], 3)
    assert q.push(KEYS[2], 4)


@settings(max_examples=300, deadline=None)
@given(workers=st.integers(1, 4), cap_ext=st.integers(1, 4), cap_tenant=st.integers(1, 5),
       ops=st.lists(st.tuples(st.sampled_from(["push", "finish", "giveup"]), st.integers(0, 3)), max_size=60))
def test_policy_invariants(workers, cap_ext, cap_tenant, ops):
    """Simulated pool: caps are never exceeded, each queue is FIFO, no worker idles while a waiter may
    run, and once the flood stops every waiter is served."""
    q = FairQueues(cap_ext, cap_tenant, queue_size=5)
    running: list[tuple] = []
    served: dict[tuple, list[int]] = {k: [] for k in KEYS}
    queued: dict[tuple, list[int]] = {k: [] for k in KEYS}
    counter = iter(range(10_000))

    def dispatch():
        while len(running) < workers and (ready := q.next_ready()) is not None:
            key, item = ready
            q.started(key)
            running.append(key)
            served[key].append(item)
            queued[key].remove(item)

    def check():
        for key in KEYS:
            assert running.count(key) <= cap_ext
            assert sum(1 for k in running if k[0] == key[0]) <= cap_tenant
            assert served[key] == sorted(served[key])  # FIFO within the queue
            if len(running) < workers and queued[key]:
                assert not q.may_run(key)  # an idle worker is only kept back by a cap

    for op, n in ops:
        key = KEYS[n]
        if op == "push":
            item = next(counter)
            if len(running) < workers and q.may_start_now(key):
                q.started(key)
                running.append(key)
                served[key].append(item)
            elif q.push(key, item):
                queued[key].append(item)
        elif op == "finish" and key in running:
            running.remove(key)
            q.finished(key)
            dispatch()
        elif op == "giveup" and queued[key]:
            item = queued[key][-1]
            assert q.remove(key, item)
            queued[key].remove(item)
        check()
    while running:
        q.finished(running.pop(0))
        dispatch()
        check()
    assert all(not items for items in queued.values())


# --- the real pool -----------------------------------------------------------------------------------

@pytest.fixture
def mini(make_app, mini_wasm):
    def build(**overrides):
        app = make_app(**overrides)
        store = svc(app).settings.bundles.bundle_store_base
        digests = {ext: publish(store, OWNERS[ext], ext, {"dist/main.wasm": mini_wasm, "manifest.json": b"{}"})
                   for ext in OWNERS}
        for ext, digest in digests.items():  # start and warm the workers
            assert call(app, digest, "/echo", ext=ext).get_json()["status"] == 200
        return app, digests
    return build


OWNERS = {"ext-a": "tenant-a", "ext-b": "tenant-b"}  # extension -> its tenant


def call(app, digest, path, ext="ext-a", timeout_ms=5000):
    tenant = OWNERS[ext]
    doc = execute_body(digest, path=path, limits={"timeout_ms": timeout_ms}, tenant=tenant, extension=ext)
    return post_execute(app.test_client(), doc, tenant=tenant, extension=ext)


def test_a_flooding_extension_leaves_a_worker_for_the_others(mini):
    app, digests = mini(workers=2)  # default cap: workers - 1 = 1
    assert svc(app).settings.runner.max_workers_per_extension == 1
    with concurrent.futures.ThreadPoolExecutor(3) as ex:
        flood = [ex.submit(call, app, digests["ext-a"], "/loop", timeout_ms=1500) for _ in range(2)]
        time.sleep(0.3)
        started = time.monotonic()
        light = call(app, digests["ext-b"], "/echo", ext="ext-b").get_json()
        light_s = time.monotonic() - started
        flood_ends = [f.result().get_json()["error"] for f in flood]
    # without the cap both loops would hold both workers and the light request wait over a second
    assert light["status"] == 200 and light_s < 1.0
    assert all(e.startswith("execute_failed: timeout") for e in flood_ends)


def test_waiting_queues_are_served_round_robin(mini):
    app, digests = mini(workers=1, max_workers_per_extension=1)
    done: list[str] = []

    def tagged(tag, ext, path, timeout_ms):
        call(app, digests[ext], path, ext=ext, timeout_ms=timeout_ms)
        done.append(tag)

    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        futures = [ex.submit(tagged, "a0", "ext-a", "/loop", 500)]
        time.sleep(0.1)
        for i in (1, 2, 3):
            futures.append(ex.submit(tagged, f"a{i}", "ext-a", "/loop", 100))
            time.sleep(0.08)
        futures.append(ex.submit(tagged, "b0", "ext-b", "/loop", 100))
        for f in futures:
            f.result()
    assert done.index("b0") == 2, done  # after a0 (running) and a1 (head of its queue), before a2, a3


def test_over_the_cap_a_full_queue_is_runner_busy_for_that_extension_only(mini):
    app, digests = mini(workers=2, queue_size=1)
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        flood = [ex.submit(call, app, digests["ext-a"], "/loop", timeout_ms=500) for _ in range(3)]
        time.sleep(0.2)
        light = call(app, digests["ext-b"], "/echo", ext="ext-b")
        statuses = sorted(f.result().status_code for f in flood)
    assert statuses == [200, 200, 503] and light.status_code == 200


def test_queue_timeout_and_shutdown_wake_waiters(mini):
    app, digests = mini(workers=1, queue_timeout_ms=200)
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        slow = ex.submit(call, app, digests["ext-a"], "/loop", timeout_ms=800)
        time.sleep(0.1)
        started = time.monotonic()
        waited = call(app, digests["ext-b"], "/echo", ext="ext-b")
        # 503 with the queue far from full: it gave up after EXT_QUEUE_TIMEOUT_MS, before the worker freed
        assert waited.status_code == 503 and time.monotonic() - started >= 0.15
        slow.result()
    app2, digests2 = mini(workers=1)
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        slow = ex.submit(call, app2, digests2["ext-a"], "/loop", timeout_ms=1500)
        time.sleep(0.1)
        queued = ex.submit(call, app2, digests2["ext-b"], "/echo", ext="ext-b")
        time.sleep(0.1)
        svc(app2).executor.pool.stop()
        assert queued.result().get_json()["error"] == "execute_failed: runner is shutting down"
        slow.result()


def _sample(name: str, **labels) -> float:
    from prometheus_client import REGISTRY
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_pool_metrics_per_owner_with_bounded_labels(mini):
    app, digests = mini(workers=1, queue_size=1, metrics_max_owners=1)
    # the warm-up gave ext-a the only labelled slot: ext-b is counted as OTHER
    rejected = dict(tenant="tenant-a", extension="ext-a", reason="queue_full")
    other = dict(tenant=metrics.OTHER, extension=metrics.OTHER)  # tenant-b/ext-b
    before = (_sample("alga_runner_pool_rejected_total", **rejected),
              _sample("alga_runner_pool_timeouts_total", tenant="tenant-a", extension="ext-a"),
              _sample("alga_runner_pool_timeouts_total", **other))
    with concurrent.futures.ThreadPoolExecutor(3) as ex:
        flood = [ex.submit(call, app, digests["ext-a"], "/loop", timeout_ms=300) for _ in range(3)]
        time.sleep(0.1)
        assert _sample("alga_runner_pool_running", tenant="tenant-a", extension="ext-a") == 1
        assert _sample("alga_runner_pool_queued", tenant="tenant-a", extension="ext-a") == 1
        [f.result() for f in flood]
    call(app, digests["ext-b"], "/loop", ext="ext-b", timeout_ms=50)  # a second owner: over the budget
    assert _sample("alga_runner_pool_rejected_total", **rejected) - before[0] == 1
    assert _sample("alga_runner_pool_timeouts_total", tenant="tenant-a", extension="ext-a") - before[1] == 2
    assert _sample("alga_runner_pool_timeouts_total", **other) - before[2] == 1
    assert _sample("alga_runner_pool_running", tenant="tenant-a", extension="ext-a") == 0
    assert _sample("alga_runner_pool_queued", tenant="tenant-a", extension="ext-a") == 0
