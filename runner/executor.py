"""Executor: one /v1/execute call, in the reference's order of checks (§1.1).

This is the one place where failures become the contract's error codes.
Bundle fetching, secret opening and capability checks run here in the
Gunicorn process; the component runs on the worker pool.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import time
from typing import Mapping
from urllib.parse import urlencode

from runner import contract
from runner.artifacts import artifact_path
from runner.contract import ExecuteRequest, failure
from runner.debug.stream import DebugStream
from runner.messages import OK, ExecutionIds, GuestRequest, Job
from runner.policy import capabilities
from runner.pool import ExecutionFailed, Pool, RunnerBusy
from runner.replays import ReplayStore
from runner.secrets_envelope import EnvelopeOpener, SecretDecryptError
from runner.settings import RunnerSettings
from service import metrics
from service.progress import QUIET, Progress
from storage.bundles.cache import BundleCache, BundleError, CachedBundle, StoreConfigError

log = logging.getLogger(__name__)

__all__ = ["Executor", "RunnerBusy"]


class Executor:
    def __init__(self, settings: RunnerSettings, bundles: BundleCache, debug: DebugStream, pool: Pool,
                 replays: ReplayStore):
        self.settings = settings
        self.bundles = bundles
        self.debug = debug
        self.pool = pool
        self.envelopes = EnvelopeOpener(settings)
        self.replays = replays

    def execute(self, headers: Mapping[str, str], req: ExecuteRequest) -> dict:
        """The JSON envelope for ``req``. Raises RunnerBusy when no worker can take it."""
        started = time.monotonic()
        try:
            outcome = self._execute(headers, req, started)
        except RunnerBusy:
            metrics.BUSY_REJECTIONS.inc()
            raise
        metrics.labelled(metrics.EXECUTIONS, outcome["error"].split(":")[0] if outcome["error"] else "ok").inc()
        metrics.EXECUTION_SECONDS.observe(time.monotonic() - started)
        return outcome

    def _execute(self, headers: Mapping[str, str], req: ExecuteRequest, started: float) -> dict:
        tenant = (headers.get("x-alga-tenant") or "").strip()
        extension = (headers.get("x-alga-extension") or "").strip()
        if not tenant or not extension:
            return failure(400, contract.MISSING_ROUTING_HEADERS)
        hex_hash = contract.hash_hex(req.context.content_hash)
        if hex_hash is None:
            return failure(400, contract.INVALID_CONTENT_HASH)

        replay_key = None
        if idem := (headers.get("x-idempotency-key") or "").strip():
            replay_key = (tenant, extension, idem)
            if (stored := self.replays.get(*replay_key)) is not None:
                return stored

        try:
            self.bundles.store  # the loader needs a usable BUNDLE_STORE_BASE, even on a warm cache
        except StoreConfigError as e:
            return failure(500, f"{contract.ENGINE_INIT_FAILED}: {e.reason}")
        with contextlib.ExitStack() as stack:
            try:  # pinned before ensure: eviction never removes it under us
                stack.enter_context(self.bundles.use(hex_hash))
            except OSError as e:
                return _cache_not_writable(e)
            return self._prepare_and_run(tenant, extension, hex_hash, req, replay_key, started)

    def warm(self, tenant: str, extension: str, hex_hash: str, progress: Progress = QUIET) -> bool:
        """Fetch, extract and compile a bundle before its first request; False when it has no component.

        ``progress`` shows the steps that do work (a cached bundle or artifact is no step).
        Raises BundleError or ExecutionFailed (a compile error) with the reason.
        """
        with self.bundles.use(hex_hash):
            if self.bundles.is_cached(hex_hash):
                bundle = self.bundles.ensure(tenant, extension, hex_hash)
            else:
                with progress.step("fetching and extracting the bundle"):
                    bundle = self.bundles.ensure(tenant, extension, hex_hash)
            if not bundle.wasm_path.is_file():
                return False
            artifact = artifact_path(bundle.compiled_dir, False)
            if not artifact.exists():
                with progress.step("compiling the component (once per bundle)"):
                    self.pool.compile(bundle.wasm_path, artifact, False)
                self.bundles.account(hex_hash)
        return True

    def _prepare_and_run(self, tenant: str, extension: str, hex_hash: str, req: ExecuteRequest,
                         replay_key: tuple | None, started: float) -> dict:
        """Steps 4-8 of the reference order, with the bundle pinned."""
        try:
            bundle = self.bundles.ensure(tenant, extension, hex_hash)
        except BundleError as e:
            return failure(502, f"{contract.BUNDLE_FETCH_FAILED}: {e.reason}")
        except OSError as e:
            return _cache_not_writable(e)
        if not bundle.wasm_path.is_file():
            return failure(502, f"{contract.BUNDLE_FETCH_FAILED}: bundle has no dist/main.wasm")

        try:
            grants = capabilities.grants(req.providers)
        except capabilities.UnknownCapabilities as e:
            return failure(400, f"{contract.UNKNOWN_CAPABILITIES}: {e}")

        ctx = req.context
        ids = ExecutionIds(ctx.tenant_id, ctx.extension_id, ctx.install_id, ctx.request_id, ctx.version_id)
        secrets = None
        if req.secret_envelope is not None:
            try:
                secrets = self.envelopes.open(req.secret_envelope, ctx.tenant_id, ctx.extension_id, ctx.install_id)
            except SecretDecryptError as e:
                log.warning("secret envelope decryption failed: %s", e, extra=ids.fields())
                self.debug.publish(ids, {"level": "error", "message": f"secret envelope decryption failed: {e}"})
                return failure(500, contract.SECRET_DECRYPT_FAILED)

        outcome, events = self._run(req, ids, bundle, grants, secrets, (tenant, extension))
        for event in events:
            self.debug.publish(ids, event)
        if outcome["error"]:
            self.debug.publish(ids, {"level": "error", "message": f"execute failed: {outcome['error']}"})
        elif replay_key:
            self.replays.put(*replay_key, outcome)
        if log.isEnabledFor(logging.INFO):  # the extra dict costs even when the line is dropped
            log.info("execute", extra={**ids.fields(), "status": outcome["status"], "error": outcome["error"],
                                       "ms": round((time.monotonic() - started) * 1000, 2)})
        return outcome

    def _run(self, req: ExecuteRequest, ids: ExecutionIds, bundle: CachedBundle, grants: frozenset[str],
             secrets: dict[str, str] | None, owner: tuple[str, str]) -> tuple[dict, list[dict]]:
        """The envelope and the guest's debug events; ``owner`` (the routing headers) is the pool queue."""
        try:
            body = _decode_body(req.http.body_b64)
        except ValueError as e:
            return failure(500, f"{contract.EXECUTE_FAILED}: invalid body base64: {e}"), []
        s, limits = self.settings, req.limits
        timeout_ms, memory_mb, fuel = s.limits_for(limits.timeout_ms, limits.memory_mb, limits.fuel)
        artifact = artifact_path(bundle.compiled_dir, fuel is not None)
        job = Job(
            id=0, bundle=bundle.hash, artifact=str(artifact), timeout_ms=timeout_ms, memory_mb=memory_mb, fuel=fuel,
            ids=ids, request=GuestRequest(req.http.method, _url(req.http.path, req.http.query),
                                          list(req.http.headers.items()), body),
            grants=grants, secrets=secrets, user=None if req.user is None else vars(req.user))
        hard_timeout = (job.timeout_ms + s.hard_deadline_grace_ms) / 1000
        compiled = artifact.exists()
        try:
            reply = self.pool.execute(job, bundle.wasm_path, hard_timeout, owner)
        except ExecutionFailed as e:
            return failure(500, f"{contract.EXECUTE_FAILED}: {e}"), []
        finally:
            if not compiled and artifact.exists():  # the pool compiled it: the bundle grew
                self.bundles.account(bundle.hash)
        if reply.outcome != OK:
            return failure(500, reply.error), reply.events
        body_b64 = None if reply.body is None else base64.b64encode(reply.body).decode("ascii")
        return contract.envelope(reply.status, dict(reply.headers), body_b64), reply.events


def _cache_not_writable(e: OSError) -> dict:
    return failure(502, f"{contract.BUNDLE_FETCH_FAILED}: cache not writable: {e}")


def _decode_body(body_b64: str | None) -> bytes | None:
    if body_b64 is None:
        return None
    try:
        return base64.b64decode(body_b64.strip(), validate=True)
    except binascii.Error as e:
        raise ValueError(str(e)) from None


def _url(path: str, query: dict[str, str]) -> str:
    """``http.url`` as the reference builds it: path plus the form-encoded query."""
    if not query:
        return path
    return f"{path}{'&' if '?' in path else '?'}{urlencode(query)}"
