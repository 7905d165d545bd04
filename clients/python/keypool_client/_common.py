"""What the sync and asyncio helpers share: reading an upstream response's status and headers,
token counts, lease answers, errors and events. No I/O here."""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Mapping, Optional

import grpc
from google.protobuf import duration_pb2

from google.rpc import error_details_pb2, status_pb2
from keypool.v1 import keypool_pb2

#: keypool accepts at most 64 headers, each value at most 8 KiB (docs/reports-and-lockout.md).
MAX_HEADERS = 64
MAX_VALUE_BYTES = 8192

PROVIDERS = {"openai": keypool_pb2.PROVIDER_OPENAI, "anthropic": keypool_pb2.PROVIDER_ANTHROPIC}
PROVIDER_NAMES = {v: k for k, v in PROVIDERS.items()}


@dataclasses.dataclass(frozen=True)
class TokenUsage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclasses.dataclass(frozen=True)
class LeasedKey:
    """The key a call uses. ``key`` is the secret: send it upstream, never log it."""

    key: str = dataclasses.field(repr=False)
    key_hash: str
    provider: str
    model_family: str
    organization_id: str
    lease_id: str


@dataclasses.dataclass(frozen=True)
class AttemptContext:
    """``attempt`` counts from 1; ``remaining()`` is the time left before the deadline in
    seconds (None without a deadline): use it as the upstream call's timeout."""

    attempt: int
    deadline: Optional[float]

    def remaining(self) -> Optional[float]:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())


@dataclasses.dataclass
class AttemptResult:
    """What the caller's function returns: the upstream ``response`` (anything with a status and
    headers), the tokens it spent (a TokenUsage, a dict with ``input_tokens`` /
    ``output_tokens``, or a callable -- an awaitable for the asyncio helper -- that gives them
    once a stream has been read), and the ``value`` handed back to the caller."""

    response: Any
    usage: Any = None
    value: Any = None


@dataclasses.dataclass(frozen=True)
class KeyedResult:
    value: Any
    status: int
    key_hash: str
    attempts: int


class NoKeyError(Exception):
    """No key could be leased: keypool said no (``code``, a grpc.StatusCode) or the deadline
    passed. ``retry_after`` is keypool's RetryInfo in seconds, when it sent one."""

    def __init__(self, message: str, code: grpc.StatusCode, retry_after: Optional[float] = None):
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> "NoKeyError":
        code = error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN
        details = error.details() if callable(getattr(error, "details", None)) else str(error)
        return cls(f"keypool leased no key: {details}", code, retry_delay_seconds(error))

    @classmethod
    def deadline(cls) -> "NoKeyError":
        return cls("keypool leased no key: the deadline passed", grpc.StatusCode.DEADLINE_EXCEEDED)


def retry_delay_seconds(error: Any) -> Optional[float]:
    """The RetryInfo delay of a RESOURCE_EXHAUSTED error, in seconds, or None."""
    trailers = error.trailing_metadata() if callable(getattr(error, "trailing_metadata", None)) else None
    for key, value in trailers or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    info = error_details_pb2.RetryInfo()
                    detail.Unpack(info)
                    return info.retry_delay.ToMilliseconds() / 1000
    return None


def is_retryable_status(status: int) -> bool:
    """Statuses after which another key may do better: 429, 401 and 5xx."""
    return status == 429 or status == 401 or status >= 500


def response_meta(value: Any) -> Optional[tuple[int, Any]]:
    """(status, headers) of an upstream response or HTTP error, whatever library made it:
    httpx / requests (``status_code``), urllib and aiohttp (``status``), urllib's HTTPError
    (``code``), and the OpenAI and Anthropic SDKs' raw responses and APIStatusError (whose
    ``response`` is the httpx response). None when it carries no HTTP status."""
    for candidate in (value, getattr(value, "response", None), getattr(value, "http_response", None)):
        if candidate is None:
            continue
        status = None
        for name in ("status_code", "status", "code"):
            raw = getattr(candidate, name, None)
            if isinstance(raw, int) and not isinstance(raw, bool) and 100 <= raw <= 599:
                status = raw
                break
        headers = getattr(candidate, "headers", None)
        if status is not None and headers is not None:
            return status, headers
    return None


def _is_rate_limit_header(name: str) -> bool:
    return name.startswith("x-ratelimit-") or name.startswith("anthropic-ratelimit-") or name.startswith("retry-after")


def headers_dict(headers: Any) -> dict[str, str]:
    """Headers as a lower-case dict for ReportRateLimit: rate-limit headers first (so that they
    survive keypool's 64-header limit), oversized values left out."""
    if headers is None:
        return {}
    if hasattr(headers, "items"):
        pairs = list(headers.items())
    else:
        pairs = list(headers)
    seen: dict[str, str] = {}
    for name, value in pairs:
        name = str(name).lower()
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        if len(text.encode("utf-8")) > MAX_VALUE_BYTES:
            continue
        seen[name] = f"{seen[name]}, {text}" if name in seen else text
    ordered = sorted(seen.items(), key=lambda item: not _is_rate_limit_header(item[0]))
    return dict(ordered[:MAX_HEADERS])


def to_usage(value: Any) -> TokenUsage:
    """A TokenUsage from a TokenUsage, a dict, an SDK usage object (OpenAI's prompt/completion
    tokens, Anthropic's input/output tokens with cache tokens counted as input), or None."""
    if value is None:
        return TokenUsage()
    if isinstance(value, TokenUsage):
        return value
    get: Callable[[str], Any] = value.get if isinstance(value, Mapping) else (lambda name: getattr(value, name, None))

    def count(name: str) -> int:
        raw = get(name)
        return int(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw > 0 else 0

    if get("prompt_tokens") is not None or get("completion_tokens") is not None:
        return TokenUsage(count("prompt_tokens"), count("completion_tokens"))
    return TokenUsage(
        count("input_tokens") + count("cache_creation_input_tokens") + count("cache_read_input_tokens"),
        count("output_tokens"),
    )


def answer_margin(remaining: float) -> float:
    """keypool's wait for a key ends this much before the deadline, so that its answer (a key, or
    RESOURCE_EXHAUSTED) arrives before the call gives up: a key granted at the very deadline would
    reach nobody and stay leased until its expiry."""
    return min(0.25, remaining / 10)


def lease_request(model: str, provider: Any, max_wait: float, remaining: Optional[float]) -> keypool_pb2.LeaseRequest:
    if isinstance(provider, str):
        provider = PROVIDERS[provider]
    wait = max_wait if remaining is None else min(max_wait, remaining - answer_margin(remaining))
    request = keypool_pb2.LeaseRequest(model=model, provider=provider or keypool_pb2.PROVIDER_UNSPECIFIED)
    if wait > 0:
        request.max_wait.CopyFrom(duration_pb2.Duration(seconds=int(wait), nanos=int((wait % 1) * 1e9)))
    return request


def leased_key(answer: keypool_pb2.LeaseResponse) -> LeasedKey:
    return LeasedKey(
        key=answer.key,
        key_hash=answer.key_hash,
        provider=PROVIDER_NAMES.get(answer.provider, "unspecified"),
        model_family=answer.model_family,
        organization_id=answer.organization_id,
        lease_id=answer.lease_id,
    )


def report_request(key: LeasedKey, status: int, headers: Any) -> keypool_pb2.ReportRateLimitRequest:
    return keypool_pb2.ReportRateLimitRequest(key_hash=key.key_hash, status_code=status, headers=headers_dict(headers), lease_id=key.lease_id)


def usage_request(model: str, key: LeasedKey, usage: TokenUsage) -> keypool_pb2.IncrementUsageRequest:
    return keypool_pb2.IncrementUsageRequest(
        key_hash=key.key_hash, model=model, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, lease_id=key.lease_id
    )


def compute_deadline(timeout: Optional[float], deadline: Optional[float]) -> Optional[float]:
    """The earlier of ``time.monotonic() + timeout`` and ``deadline`` (a time.monotonic() value)."""
    candidates = [d for d in (deadline, None if timeout is None else time.monotonic() + timeout) if d is not None]
    return min(candidates) if candidates else None


def rpc_error_event(step: str, error: Any, key_hash: Optional[str] = None) -> dict:
    """An error event: the gRPC code and keypool's message (which never holds a secret)."""
    event = {"type": "error", "step": step}
    if key_hash:
        event["key_hash"] = key_hash
    if callable(getattr(error, "code", None)):
        event["code"] = error.code().name
        event["message"] = error.details() or ""
    else:
        event["message"] = type(error).__name__
    return event


def auth_metadata(token: Optional[str]) -> tuple:
    return (("authorization", f"Bearer {token}"),) if token else ()
