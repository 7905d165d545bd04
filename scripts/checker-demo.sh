#!/usr/bin/env bash
# The README's key checker demo: a fake upstream on 127.0.0.1 (keys of every kind) and keypool
# checking them against it, in memory, on 127.0.0.1:50051. Watch it with `npx keypool-watch`.
# Nothing leaves the machine. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build --silent
fake_port="${FAKE_UPSTREAM_PORT:-8090}"
# Each answer takes 700 ms, so that the checks can be watched one by one.
node dist/src/fake-upstream/main.js --port "$fake_port" --latency 700ms --slow 30s &
fake=$!
trap 'kill "$fake" 2>/dev/null || true' EXIT
behaviours="working revoked over-quota trial multi-org 32k-quirk slow 5xx refused terminated rate-limited"
openai=""; anthropic=""
for b in $behaviours; do openai="$openai,sk-fake-$b-1"; done
for b in working revoked over-quota rate-limited; do anthropic="$anthropic,sk-ant-fake-$b-1"; done
export OPENAI_KEY="${openai#,}" ANTHROPIC_KEY="${anthropic#,}"
export KEYPOOL_STATE=memory
fake_url="http://127.0.0.1:$fake_port"
# Every checker URL at the fake, whatever keys are added later.
export KEYPOOL_OPENAI_BASE_URL="$fake_url" KEYPOOL_ANTHROPIC_BASE_URL="$fake_url" KEYPOOL_GOOGLE_AI_BASE_URL="$fake_url" \
  KEYPOOL_MISTRAL_BASE_URL="$fake_url" KEYPOOL_AZURE_BASE_URL="$fake_url" KEYPOOL_BEDROCK_BASE_URL="$fake_url" \
  KEYPOOL_VERTEX_BASE_URL="$fake_url" KEYPOOL_VERTEX_TOKEN_URL="$fake_url/token"
export KEYPOOL_CHECK_CONCURRENCY=2 KEYPOOL_CHECK_TIMEOUT=5s KEYPOOL_CHECK_PERIOD=1m
node dist/src/main.js
