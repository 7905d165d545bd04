"""Reads a large pool with grpcio's default 4 MiB receive limit: every ListKeys page, and the
WatchKeys snapshot slices (with and without batch), using the helpers of examples/python_client.py.
Prints one JSON line with what it read; any message over the limit fails the call with
RESOURCE_EXHAUSTED and ends this script with an error.

    PYTHONPATH=gen/python:examples python3 test/e2e/python/large_pool_reader.py 127.0.0.1:50051
"""
import json
import sys
import time

import grpc

from keypool.v1 import keypool_pb2, keypool_pb2_grpc
from python_client import list_all_keys, read_snapshot


def main(address: str) -> None:
    # No channel options: the default receive limit (4 MiB) applies.
    with grpc.insecure_channel(address) as channel:
        pool = keypool_pb2_grpc.KeyPoolServiceStub(channel)
        started = time.monotonic()
        listed = list_all_keys(pool)
        print(f"listed in {time.monotonic() - started:.1f}s", file=sys.stderr)
        out = {
            "listed": len(listed),
            "listed_distinct": len({k.key_hash for k in listed}),
            "listed_sorted": all(listed[i].key_hash < listed[i + 1].key_hash for i in range(len(listed) - 1)),
            "families": sorted({len(k.model_families) for k in listed}),
            "with_org": sum(1 for k in listed if k.organization_id),
        }
        for batch in (False, True):
            stream = pool.WatchKeys(keypool_pb2.WatchKeysRequest(batch=batch), timeout=120)
            started = time.monotonic()
            keys, slices = read_snapshot(stream)
            print(f"snapshot (batch={batch}) in {time.monotonic() - started:.1f}s", file=sys.stderr)
            stream.cancel()
            out["batch" if batch else "plain"] = {
                "slices": slices,
                "keys": len(keys),
                "same_as_listed": sorted(keys) == [k.key_hash for k in listed],
            }
        print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
