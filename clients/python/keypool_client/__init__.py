"""keypool_client: lease upstream API keys from keypool, call the upstream, report back and retry
on another key, in one call. ``KeyPool`` for blocking code, ``AsyncKeyPool`` for asyncio.

Needs grpcio, protobuf, and the generated code of gen/python on the import path (see README.md in
this folder)."""

from ._common import (
    AttemptContext,
    AttemptResult,
    KeyedResult,
    LeasedKey,
    NoKeyError,
    TokenUsage,
    headers_dict,
    is_retryable_status,
    response_meta,
    to_usage,
)
from .aio import AsyncKeyPool
from .sync import KeyPool

__all__ = [
    "AsyncKeyPool",
    "AttemptContext",
    "AttemptResult",
    "KeyPool",
    "KeyedResult",
    "LeasedKey",
    "NoKeyError",
    "TokenUsage",
    "headers_dict",
    "is_retryable_status",
    "response_meta",
    "to_usage",
]
