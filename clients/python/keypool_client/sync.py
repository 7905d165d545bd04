"""The proxy's round trip with keypool, for blocking code (grpcio): see KeyPool.with_key."""

from __future__ import annotations

import time
from typing import Any, Callable, Optional, Union

import grpc

from keypool.v1 import keypool_pb2_grpc

from ._common import (
    AttemptContext,
    AttemptResult,
    KeyedResult,
    LeasedKey,
    NoKeyError,
    TokenUsage,
    auth_metadata,
    compute_deadline,
    is_retryable_status,
    lease_request,
    leased_key,
    report_request,
    response_meta,
    rpc_error_event,
    to_usage,
    usage_request,
)

Call = Callable[[LeasedKey, AttemptContext], AttemptResult]


class KeyPool:
    """Leases keys from keypool for a caller's upstream call, reports back, retries.

    ``target`` is keypool's address (``"127.0.0.1:50051"``, a plaintext channel is opened) or a
    grpc.Channel of your own (TLS, options). ``token``: a bearer token with the ``lease`` role
    when keypool requires tokens. ``on_event`` receives one dict per step (lease, report, usage,
    retry, error); events carry the key hash, never the key.
    """

    def __init__(
        self,
        target: Union[str, grpc.Channel],
        *,
        token: Optional[str] = None,
        attempts: int = 3,
        report_timeout: float = 2.0,
        on_event: Optional[Callable[[dict], None]] = None,
    ):
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self._own_channel = isinstance(target, str)
        self._channel = grpc.insecure_channel(target) if isinstance(target, str) else target
        #: The generated stub, for the RPCs the helper does not wrap (ListKeys, GetLockoutPeriod...).
        self.stub = keypool_pb2_grpc.KeyPoolServiceStub(self._channel)
        self._metadata = auth_metadata(token)
        self._attempts = attempts
        self._report_timeout = report_timeout
        self._on_event = on_event or (lambda event: None)

    def close(self) -> None:
        if self._own_channel:
            self._channel.close()

    def __enter__(self) -> "KeyPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def with_key(
        self,
        model: str,
        call: Call,
        *,
        provider: Any = None,
        max_wait: float = 0.0,
        timeout: Optional[float] = None,
        deadline: Optional[float] = None,
        attempts: Optional[int] = None,
    ) -> KeyedResult:
        """Runs ``call(key, context)`` with a leased key and does the rest: ReportRateLimit with
        the status and headers of the response it returns, IncrementUsage with its tokens and the
        lease id (which ends the lease, also when ``call`` raises), and on 429, 401 or 5xx the
        same again with another key, within ``attempts`` and the deadline (``timeout`` seconds
        from now, or ``deadline`` as a time.monotonic() value). ``max_wait`` (seconds): how long
        each Lease may wait for a ready key. An exception with an HTTP status and headers (an SDK's
        APIStatusError, urllib's HTTPError) counts as that response; any other ends the lease and
        propagates. Returns the first non-retryable attempt's KeyedResult, or the last one when
        attempts or time run out; raises NoKeyError when the first Lease fails."""
        end = compute_deadline(timeout, deadline)
        budget = attempts or self._attempts
        last: Optional[tuple[str, Any]] = None
        for attempt in range(1, budget + 1):
            remaining = None if end is None else end - time.monotonic()
            if remaining is not None and remaining <= 0:
                return _finish(last, NoKeyError.deadline())
            try:
                key = self._lease(model, provider, max_wait, remaining, attempt)
            except NoKeyError as error:
                return _finish(last, error)
            status, outcome = self._attempt(model, key, AttemptContext(attempt, end), call)
            last = outcome
            if not is_retryable_status(status):
                break
            if attempt < budget:
                self._on_event({"type": "retry", "key_hash": key.key_hash, "status": status, "attempt": attempt})
        return _finish(last, NoKeyError.deadline())

    def _lease(self, model: str, provider: Any, max_wait: float, remaining: Optional[float], attempt: int) -> LeasedKey:
        started = time.perf_counter()
        try:
            answer = self.stub.Lease(lease_request(model, provider, max_wait, remaining), timeout=remaining, metadata=self._metadata)
        except grpc.RpcError as error:
            self._on_event(rpc_error_event("lease", error))
            raise NoKeyError.from_rpc_error(error) from None
        key = leased_key(answer)
        self._on_event({"type": "lease", "attempt": attempt, "key_hash": key.key_hash, "lease_id": key.lease_id,
                        "model_family": key.model_family, "ms": (time.perf_counter() - started) * 1000})
        return key

    def _attempt(self, model: str, key: LeasedKey, context: AttemptContext, call: Call) -> tuple[int, tuple[str, Any]]:
        usage = TokenUsage()
        try:
            try:
                result = call(key, context)
            except Exception as error:
                meta = response_meta(error)
                if meta is None:
                    self._on_event({"type": "error", "step": "call", "key_hash": key.key_hash, "message": type(error).__name__})
                    raise
                self._report(key, *meta)
                return meta[0], ("raise", error)
            meta = response_meta(result.response)
            if meta is None:
                raise TypeError("the function passed to with_key must return AttemptResult(response=...) with a status and headers")
            self._report(key, *meta)
            raw = result.usage() if callable(result.usage) else result.usage
            usage = to_usage(raw)
            return meta[0], ("result", KeyedResult(result.value, meta[0], key.key_hash, context.attempt))
        finally:
            self._end_lease(model, key, usage)

    def _report(self, key: LeasedKey, status: int, headers: Any) -> None:
        started = time.perf_counter()
        try:
            self.stub.ReportRateLimit(report_request(key, status, headers), timeout=self._report_timeout, metadata=self._metadata)
            self._on_event({"type": "report", "key_hash": key.key_hash, "status": status, "ms": (time.perf_counter() - started) * 1000})
        except grpc.RpcError as error:
            # The upstream answered: a failed report does not fail the caller's request.
            self._on_event(rpc_error_event("report", error, key.key_hash))

    def _end_lease(self, model: str, key: LeasedKey, usage: TokenUsage) -> None:
        started = time.perf_counter()
        try:
            self.stub.IncrementUsage(usage_request(model, key, usage), timeout=self._report_timeout, metadata=self._metadata)
            self._on_event({"type": "usage", "key_hash": key.key_hash, "lease_id": key.lease_id, "input_tokens": usage.input_tokens,
                            "output_tokens": usage.output_tokens, "ms": (time.perf_counter() - started) * 1000})
        except grpc.RpcError as error:
            self._on_event(rpc_error_event("usage", error, key.key_hash))


def _finish(last: Optional[tuple[str, Any]], otherwise: NoKeyError) -> KeyedResult:
    if last is None:
        raise otherwise
    kind, value = last
    if kind == "raise":
        raise value
    return value
