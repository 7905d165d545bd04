#!/usr/bin/env python3
"""A proxy's round trip with keypool, using the generated Python client in gen/python.

    PYTHONPATH=gen/python python3 examples/python_client.py 127.0.0.1:50051 gpt-4o-mini

It needs a python3 with grpcio and protobuf: Debian's `apt-get install python3-grpcio
python3-protobuf` (then /usr/bin/python3), or `pip install grpcio protobuf`.

Either port works: the main port (KEYPOOL_PORT, 50051) or the native gRPC port (KEYPOOL_GRPC_PORT,
say 50052), which serves more leases per second. One channel is opened once and kept for every call.

Leases a key, reports the upstream's answer, records the tokens spent, lists the keys (page by
page: list_all_keys; read_snapshot shows how a WatchKeys snapshot arrives in slices), and shows
how to read the retry delay when every key is busy (RESOURCE_EXHAUSTED carries a
google.rpc.RetryInfo in the grpc-status-details-bin trailer). Prints one JSON line per step.
"""
import json
import sys

try:
    import grpc
    from google.protobuf import duration_pb2
except ImportError as missing:
    sys.exit(
        f"{sys.executable} has no {missing.name}: install grpcio and protobuf for it "
        "(Debian: apt-get install python3-grpcio python3-protobuf; pip: pip install grpcio protobuf)"
    )

from google.rpc import error_details_pb2, status_pb2
from keypool.v1 import keypool_pb2, keypool_pb2_grpc


def retry_delay_seconds(error: grpc.RpcError):
    """The RetryInfo delay of a RESOURCE_EXHAUSTED error, in seconds, or None."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    info = error_details_pb2.RetryInfo()
                    detail.Unpack(info)
                    return info.retry_delay.ToMilliseconds() / 1000
    return None


def list_all_keys(pool, **filters):
    """Every matching key, page by page (each response fits a client's default 4 MiB limit)."""
    keys, token = [], ""
    while True:
        page = pool.ListKeys(keypool_pb2.ListKeysRequest(page_token=token, **filters))
        keys.extend(page.keys)
        token = page.next_page_token
        if not token:
            return keys


def read_snapshot(stream):
    """The keys of a WatchKeys stream's snapshot, by hash, and how many slices it came in.

    The snapshot arrives in slices; the last one has `more` false. Updates that follow it in the
    stream (`updated`, `removed_key_hash`, or with batch=True `changes`) apply after it.
    """
    keys, slices = {}, 0
    for message in stream:
        if message.WhichOneof("event") != "snapshot":
            continue  # a heartbeat; updates only come after the last slice
        slices += 1
        for key in message.snapshot.keys:
            keys[key.key_hash] = key
        if not message.snapshot.more:
            return keys, slices
    raise RuntimeError("the stream ended before the last snapshot slice")


def main(address: str, model: str) -> None:
    with grpc.insecure_channel(address) as channel:
        pool = keypool_pb2_grpc.KeyPoolServiceStub(channel)

        # Lease: wait up to 2 s for a ready key (never past the call's 5 s deadline).
        lease = pool.Lease(
            keypool_pb2.LeaseRequest(model=model, max_wait=duration_pb2.Duration(seconds=2)),
            timeout=5,
        )
        # lease.key goes upstream; only lease.key_hash is ever printed or logged.
        print(json.dumps({"step": "lease", "key_hash": lease.key_hash, "family": lease.model_family}))

        # ... call the upstream with lease.key, then tell keypool what it answered:
        report = pool.ReportRateLimit(
            keypool_pb2.ReportRateLimitRequest(
                key_hash=lease.key_hash,
                status_code=200,
                headers={"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s"},
                lease_id=lease.lease_id,
            )
        )
        print(json.dumps({"step": "report", "ready_at": report.ready_at.ToMilliseconds()}))

        pool.IncrementUsage(
            keypool_pb2.IncrementUsageRequest(
                key_hash=lease.key_hash, model=model, input_tokens=120, output_tokens=30, lease_id=lease.lease_id
            )
        )
        print(json.dumps({"step": "usage"}))

        keys = list_all_keys(pool)
        print(json.dumps({
            "step": "list",
            "keys": [
                {"key_hash": k.key_hash, "prompt_count": k.prompt_count,
                 "usage": {f: {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens} for f, u in k.usage.items()}}
                for k in keys
            ],
        }))

        # The key is now held (the reset header said so): asking again without waiting is refused
        # with RESOURCE_EXHAUSTED, and the error says when to retry.
        try:
            pool.Lease(keypool_pb2.LeaseRequest(model=model))
            print(json.dumps({"step": "busy", "leased": True}))
        except grpc.RpcError as error:
            print(json.dumps({"step": "busy", "code": error.code().name, "retry_delay_s": retry_delay_seconds(error)}))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051", sys.argv[2] if len(sys.argv) > 2 else "gpt-4o-mini")
