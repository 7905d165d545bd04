#!/usr/bin/env bash
# Three keypool replicas and one Redis on this machine, without containers (the README's
# "Several replicas on one Redis"): redis-server on 127.0.0.1:$REDIS_PORT with the durability
# keypool needs (appendonly yes, appendfsync always), and keypool on consecutive ports from
# $KEYPOOL_BASE_PORT, all sharing one pool. Keys come from the environment as for one keypool
# (OPENAI_KEY, ANTHROPIC_KEY, KEYPOOL_KEYS_FILE); every other KEYPOOL_* setting passes through.
# Each process logs to $REPLICAS_DIR/<name>.log. Ctrl-C (or SIGTERM) stops the replicas, then Redis.
#
#   REDIS_PORT        6379
#   KEYPOOL_BASE_PORT 50051 (replicas on 50051, 50052, 50053)
#   REPLICAS          3
#   REPLICAS_DIR      ./data/replicas (Redis's append-only file, the logs)
set -euo pipefail
cd "$(dirname "$0")/.."
redis_port="${REDIS_PORT:-6379}"
base_port="${KEYPOOL_BASE_PORT:-50051}"
replicas="${REPLICAS:-3}"
dir="${REPLICAS_DIR:-./data/replicas}"
# Read here; the replicas would warn about a KEYPOOL_* variable that is not theirs.
unset KEYPOOL_BASE_PORT

command -v redis-server >/dev/null || { echo "replicas: redis-server is not installed (Debian/Ubuntu: apt-get install redis-server)" >&2; exit 1; }
sh scripts/build-if-stale.sh
mkdir -p "$dir/redis"
chmod 700 "$dir"

pids=()
stop() {
  trap - INT TERM EXIT
  # Replicas first (they drain within 5 s), then Redis, which writes its file on SIGTERM.
  for pid in "${pids[@]:1}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]:1}"; do wait "$pid" 2>/dev/null || true; done
  kill -TERM "${pids[0]}" 2>/dev/null || true
  wait "${pids[0]}" 2>/dev/null || true
  echo "replicas: stopped"
}
trap stop EXIT
trap 'stop; exit 0' INT TERM

# The Redis keeps keys' secrets: loopback only here. See the README before exposing it.
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$dir/redis" --daemonize no \
  --appendonly yes --appendfsync always --save "" --logfile "" >"$dir/redis.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null; then break; fi
  kill -0 "${pids[0]}" 2>/dev/null || { echo "replicas: redis-server did not start; see $dir/redis.log:" >&2; tail -n 5 "$dir/redis.log" >&2; exit 1; }
  sleep 0.1
done

export KEYPOOL_STATE="redis://127.0.0.1:$redis_port"
for i in $(seq 0 $((replicas - 1))); do
  port=$((base_port + i))
  KEYPOOL_PORT="$port" node dist/src/main.js >"$dir/keypool-$port.log" 2>&1 &
  pids+=("$!")
done

# Ready when every replica answers /healthz SERVING.
for i in $(seq 0 $((replicas - 1))); do
  port=$((base_port + i))
  for attempt in $(seq 200); do
    if node -e "fetch('http://127.0.0.1:$port/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"; then break; fi
    if ! kill -0 "${pids[$((i + 1))]}" 2>/dev/null || [ "$attempt" = 200 ]; then
      echo "replicas: keypool on port $port did not start; see $dir/keypool-$port.log:" >&2
      tail -n 5 "$dir/keypool-$port.log" >&2
      exit 1
    fi
    sleep 0.1
  done
done
echo "replicas: ready: Redis on 127.0.0.1:$redis_port, keypool on 127.0.0.1:$base_port..$((base_port + replicas - 1)); logs in $dir. Ctrl-C stops them."
# Wait on every child: one that ends (a crash) stops the rest rather than leave a partial fleet.
wait -n "${pids[@]}" || true
echo "replicas: a process exited; stopping the others" >&2
exit 1
