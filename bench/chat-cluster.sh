#!/usr/bin/env bash
# A two-node chat cluster (two `chat serve --redis` nodes and one redis-server) beside a single
# chat server, in one run, under one load generator: socketeer bench chat, given both nodes'
# addresses, spreads its clients over them in turn (the sender on the first node), so half the
# receivers get every message through Redis.
#
#   bench/chat-cluster.sh                      # 3 rounds of 3 s per setup and scenario
#   ROUNDS=5 DURATION=5s bench/chat-cluster.sh
#
# Scenarios (the targets of issue 9):
#   rate 1000/s   100 clients, 1 sender at 1000 messages/s: publish-to-receive p99, of every
#                 receiver and of the receivers on the other node alone (cross-node)
#   fan-out 100   100 clients, 1 sender, 64-byte messages as fast as a window of 256 in-flight
#                 messages allows: deliveries/s (messages received, summed over clients)
# Every measurement starts fresh processes (servers and Redis); rounds interleave the two
# setups, and each cell is the median round.
#
# Needs redis-server (installed with apt-get when run as root). Everything stays on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
duration=${DURATION:-3s}
rounds=${ROUNDS:-3}

need redis-server redis-server
build
wait_port() { for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; }

work=$(mktemp -d)
pids=()
stop_all() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done; pids=(); }
cleanup() { stop_all; rm -rf "$work"; }
trap cleanup EXIT

chat_flags=(--rate-limit off --max-per-ip off)

# start SETUP: starts a fresh single server or cluster; sets targets.
start() {
  targets=()
  if [ "$1" = single ]; then
    local port; port=$(free_port)
    "$bin" -q chat serve --port "$port" "${chat_flags[@]}" >/dev/null 2>>"$work/server.log" &
    pids+=($!)
    wait_port "$port"
    targets=("127.0.0.1:$port")
    return
  fi
  local redis_port; redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning >/dev/null &
  pids+=($!)
  wait_port "$redis_port"
  for node in a b; do
    local port; port=$(free_port)
    : >"$work/$node.log"
    "$bin" chat serve --port "$port" "${chat_flags[@]}" --redis "redis://127.0.0.1:$redis_port" \
      --node-id "$node" >/dev/null 2>"$work/$node.log" &
    pids+=($!)
    for _ in $(seq 50); do grep -q 'joined the chat cluster' "$work/$node.log" && break; sleep 0.1; done
    targets+=("127.0.0.1:$port")
  done
}

# measure NAME SETUP BENCH-ARGS...: one run on fresh processes, appended to results.
measure() {
  local name=$1 setup=$2; shift 2
  start "$setup"
  "$bin" bench chat "${targets[@]}" --json "$@" |
    python3 -c 'import json,sys; r=json.load(sys.stdin); r["name"]=sys.argv[1]; r["setup"]=sys.argv[2]; print(json.dumps(r))' \
      "$name" "$setup" >>"$work/results"
  stop_all
}

for _ in $(seq "$rounds"); do
  for setup in single cluster; do
    measure "rate 1000/s" "$setup" -c 100 --rate 1000 -d "$duration"
    measure "fan-out 100" "$setup" -c 100 -d "$duration"
  done
done

echo "# bench/chat-cluster.sh: $(nproc) cores, $(date -u +%Y-%m-%d), median of ${rounds} rounds of ${duration}, load generator: socketeer bench chat"
echo
python3 - "$work/results" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
def pick(name, setup):
    return [r for r in runs if r["name"] == name and r["setup"] == setup]
def median(values):
    return statistics.median(values)
def once(name, setup):
    return "yes" if all(r["exactly_once_in_order"] for r in pick(name, setup)) else "NO"
def near(r):
    # The receivers on the sender's node: their lines never went through Redis.
    return r["latency_by_server"][0]["latency"]
def cross(r):
    # The receivers of the second node: every line they got came through Redis.
    return r["latency_by_server"][1]["latency"]

print("| scenario | measure | 1 node | 2 nodes + Redis | 2 nodes vs 1 | once, in order (1 node / 2 nodes) |")
print("|---|---|---|---|---|---|")
name = "rate 1000/s"
p99 = {s: median([r["latency"]["p99_us"] for r in pick(name, s)]) for s in ("single", "cluster")}
p50 = {s: median([r["latency"]["p50_us"] for r in pick(name, s)]) for s in ("single", "cluster")}
flags = f'{once(name, "single")} / {once(name, "cluster")}'
print(f"| 100 clients, 1000 messages/s | p99 (p50) latency µs, every receiver | {p99['single']:,.0f} ({p50['single']:,.0f}) | {p99['cluster']:,.0f} ({p50['cluster']:,.0f}) | {p99['cluster']/p99['single']:.2f}x | {flags} |")
near_p99 = median([near(r)["p99_us"] for r in pick(name, "cluster")])
near_p50 = median([near(r)["p50_us"] for r in pick(name, "cluster")])
print(f"| 100 clients, 1000 messages/s | p99 (p50) latency µs, receivers on the sender's node | | {near_p99:,.0f} ({near_p50:,.0f}) | | {once(name, 'cluster')} |")
cross_p99 = median([cross(r)["p99_us"] for r in pick(name, "cluster")])
cross_p50 = median([cross(r)["p50_us"] for r in pick(name, "cluster")])
rounds_p99 = ", ".join(f'{cross(r)["p99_us"]:,}' for r in pick(name, "cluster"))
print(f"| 100 clients, 1000 messages/s | p99 (p50) latency µs, receivers on the other node (p99 of each round: {rounds_p99}) | | {cross_p99:,.0f} ({cross_p50:,.0f}) | | {once(name, 'cluster')} |")
name = "fan-out 100"
rate = {s: median([r["deliveries_per_sec"] for r in pick(name, s)]) for s in ("single", "cluster")}
flags = f'{once(name, "single")} / {once(name, "cluster")}'
print(f"| 100 clients, 1 sender, 64 B, as fast as possible | deliveries/s | {rate['single']:,.0f} | {rate['cluster']:,.0f} | {rate['cluster']/rate['single']:.2f}x | {flags} |")
PY
