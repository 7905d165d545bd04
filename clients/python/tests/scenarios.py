#!/usr/bin/env python3
"""Scenarios of the Python helper against a real keypool and the fake chat upstream, run by
test/e2e/client-helper-python.test.ts, which sets the upstream's behaviour per key and checks
keypool's state afterwards. Each run prints one JSON line: what the helper returned or raised,
its events, and the time it took.

    KEYPOOL_ADDRESS=127.0.0.1:50051 UPSTREAM_URL=http://127.0.0.1:8090 \\
      PYTHONPATH=gen/python:clients/python python3 clients/python/tests/scenarios.py sync-429
"""

import asyncio
import json
import os
import sys
import time
import urllib.error
import urllib.request

from keypool_client import AsyncKeyPool, AttemptResult, KeyPool, NoKeyError
from keypool.v1 import keypool_pb2

ADDRESS = os.environ["KEYPOOL_ADDRESS"]
UPSTREAM = os.environ["UPSTREAM_URL"]


def post_chat(key, context, model):
    """One OpenAI chat completion with urllib. An HTTP error is raised as urllib's HTTPError,
    which carries the status and headers: the helper reports it like a response."""
    request = urllib.request.Request(
        f"{UPSTREAM}/v1/chat/completions",
        data=json.dumps({"model": model, "messages": [{"role": "user", "content": "How are keys shared?"}]}).encode(),
        headers={"authorization": f"Bearer {key.key}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=context.remaining()) as response:
        body = json.load(response)
        return AttemptResult(response=response, usage=body["usage"], value=body["choices"][0]["message"]["content"])


def outcome_of(run):
    started = time.monotonic()
    try:
        result = run()
        outcome = {"status": result.status, "key_hash": result.key_hash, "attempts": result.attempts, "value": result.value}
    except NoKeyError as error:
        outcome = {"raised": "NoKeyError", "code": error.code.name, "retry_after": error.retry_after}
    except urllib.error.HTTPError as error:
        outcome = {"raised": "HTTPError", "status": error.code}
    except Exception as error:  # the scenario reports what reached the caller
        outcome = {"raised": type(error).__name__, "message": str(error)}
    outcome["elapsed"] = time.monotonic() - started
    return outcome


def raise_boom(key, context):
    raise RuntimeError("connection reset while sending")


def sync_scenario(name, events):
    with KeyPool(ADDRESS, on_event=events.append) as pool:
        if name == "sync-429" or name == "sync-401":
            return outcome_of(lambda: pool.with_key("gpt-4o-mini", lambda k, c: post_chat(k, c, "gpt-4o-mini")))
        if name == "sync-usage":
            return outcome_of(lambda: pool.with_key("gpt-4", lambda k, c: post_chat(k, c, "gpt-4")))
        if name == "sync-throw":
            return outcome_of(lambda: pool.with_key("gpt-4o-mini", raise_boom))
        if name == "sync-deadline":
            return outcome_of(lambda: pool.with_key("gpt-4o-mini", lambda k, c: post_chat(k, c, "gpt-4o-mini"), timeout=1.0, max_wait=10, attempts=10))
        if name == "sync-max-wait":
            # Hold every key (each lease holds its key for keypool's reuse delay).
            for _ in range(3):
                pool.stub.Lease(keypool_pb2.LeaseRequest(model="gpt-4o-mini"))
            refused = outcome_of(lambda: pool.with_key("gpt-4o-mini", lambda k, c: post_chat(k, c, "gpt-4o-mini")))
            waited = outcome_of(lambda: pool.with_key("gpt-4o-mini", lambda k, c: post_chat(k, c, "gpt-4o-mini"), max_wait=5))
            return {"refused": refused, "waited": waited}
    raise SystemExit(f"unknown scenario {name}")


async def async_scenario(name, events):
    async def chat(key, context):
        return await asyncio.to_thread(post_chat, key, context, "gpt-4o-mini")

    async def boom(key, context):
        raise RuntimeError("connection reset while sending")

    async def run(coroutine_factory):
        started = time.monotonic()
        try:
            result = await coroutine_factory()
            outcome = {"status": result.status, "key_hash": result.key_hash, "attempts": result.attempts, "value": result.value}
        except NoKeyError as error:
            outcome = {"raised": "NoKeyError", "code": error.code.name, "retry_after": error.retry_after}
        except Exception as error:
            outcome = {"raised": type(error).__name__, "message": str(error)}
        outcome["elapsed"] = time.monotonic() - started
        return outcome

    async with AsyncKeyPool(ADDRESS, on_event=events.append) as pool:
        if name == "async-429":
            return await run(lambda: pool.with_key("gpt-4o-mini", chat))
        if name == "async-throw":
            return await run(lambda: pool.with_key("gpt-4o-mini", boom))
        if name == "async-deadline":
            # The upstream never answers in time: the helper cancels the call at the deadline.
            async def slow(key, context):
                await asyncio.sleep(30)

            return await run(lambda: pool.with_key("gpt-4o-mini", slow, timeout=0.5))
    raise SystemExit(f"unknown scenario {name}")


def main():
    name = sys.argv[1]
    events = []
    if name.startswith("async-"):
        outcome = asyncio.run(async_scenario(name, events))
    else:
        outcome = sync_scenario(name, events)
    print(json.dumps({"outcome": outcome, "events": events}))


if __name__ == "__main__":
    main()
