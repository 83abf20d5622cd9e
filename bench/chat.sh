#!/usr/bin/env bash
# The chat server beside redis-server pub/sub, in one run, under one load generator
# (socketeer bench chat, which speaks both: chat lines, or SUBSCRIBE/PUBLISH with --redis).
#
#   bench/chat.sh                      # 3 rounds of 3 s per server and scenario
#   ROUNDS=5 DURATION=5s bench/chat.sh
#
# Scenarios (the targets of issue 3):
#   fan-out 100 / 1000   N clients, 1 sender, 64-byte messages as fast as a window of 256
#                        in-flight messages allows: deliveries/s (messages received, summed)
#   rate 1000/s          100 clients, 1 sender at 1000 messages/s: publish-to-receive p99
#   idle 2000            2000 clients that join and stay silent: server memory per client
#                        (resident, from /proc, after they joined) and time to join
#   stalled              20 readers plus one client that never reads, against the same 20
#                        readers alone: the share of the rate the readers keep, whether the
#                        stalled client was dropped, and the server's peak memory
#   burst 20000          100 clients, one sender writes 20,000 messages of 100 bytes at
#                        once (issue 16): how many deliveries arrive, readers dropped, how
#                        long until the last one, and the server's peak memory
# Every measurement starts a fresh server process (so memory has a clean baseline); rounds
# interleave the two servers, and each cell is the median round.
#
# Needs redis-server (installed with apt-get when run as root). Everything stays on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
duration=${DURATION:-3s}
rounds=${ROUNDS:-3}

need redis-server redis-server
build
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d)
server_pid=
cleanup() { if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi; rm -rf "$work"; }
trap cleanup EXIT

# measure NAME SERVER SCENARIO BENCH-ARGS...: one run on a fresh server, appended to results.
measure() {
  local name=$1 server=$2 scenario=$3; shift 3
  local port; port=$(free_port)
  if [ "$server" = socketeer ]; then
    "$bin" -q chat serve --port "$port" --rate-limit off --max-per-ip off --max-clients 5000 >/dev/null 2>>"$work/server.log" &
  else
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning >/dev/null &
  fi
  server_pid=$!
  local flag=""
  [ "$server" = redis ] && flag=--redis
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  "$bin" bench chat "127.0.0.1:$port" $flag --server-pid "$server_pid" --json "$@" |
    python3 -c 'import json,sys; r=json.load(sys.stdin); r["name"]=sys.argv[1]; r["server_name"]=sys.argv[2]; r["scenario"]=sys.argv[3]; print(json.dumps(r))' \
      "$name" "$server" "$scenario" >>"$work/results"
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
}

for _ in $(seq "$rounds"); do
  for server in socketeer redis; do
    measure "fan-out 100" "$server" fanout -c 100 -d "$duration"
    measure "fan-out 1000" "$server" fanout -c 1000 -d "$duration"
    measure "rate 1000/s" "$server" rate -c 100 --rate 1000 -d "$duration"
    measure "idle 2000" "$server" idle -c 2000 --senders 0 -d 1s
    measure "stalled" "$server" stalled -c 20 --stalled 1 -d "$duration"
    measure "stalled" "$server" alone -c 20 -d "$duration"
    measure "burst 20000" "$server" burst -c 100 --burst 20000 --size 100 --timeout 10s
  done
done

echo "# bench/chat.sh: $(nproc) cores, $(date -u +%Y-%m-%d), median of ${rounds} rounds of ${duration}, load generator: socketeer bench chat"
echo
python3 - "$work/results" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
def pick(name, server, scenario=None):
    return [r for r in runs if r["name"] == name and r["server_name"] == server and (scenario is None or r["scenario"] == scenario)]
def median(values):
    return statistics.median(values)
def once(name):
    return "yes" if all(r["exactly_once_in_order"] for r in runs if r["name"] == name and r["senders"] > 0) else "NO"

print("| scenario | measure | socketeer | redis-server | socketeer vs redis | every message once, in order |")
print("|---|---|---|---|---|---|")
for name in ["fan-out 100", "fan-out 1000"]:
    ours = median([r["deliveries_per_sec"] for r in pick(name, "socketeer")])
    redis = median([r["deliveries_per_sec"] for r in pick(name, "redis")])
    clients = name.split()[-1]
    print(f"| {clients} clients, 1 sender, 64 B, as fast as possible | deliveries/s | {ours:,.0f} | {redis:,.0f} | {ours/redis:.2f}x | {once(name)} |")
for name in ["rate 1000/s"]:
    ours = median([r["latency"]["p99_us"] for r in pick(name, "socketeer")])
    redis = median([r["latency"]["p99_us"] for r in pick(name, "redis")])
    p50s = [median([r["latency"]["p50_us"] for r in pick(name, s)]) for s in ("socketeer", "redis")]
    print(f"| 100 clients, 1000 messages/s | p99 (p50) latency µs | {ours:,.0f} ({p50s[0]:,.0f}) | {redis:,.0f} ({p50s[1]:,.0f}) | {redis/ours:.2f}x lower | {once(name)} |")
name = "idle 2000"
mem = {s: median([r["server_usage"]["rss_kib_per_connection"] for r in pick(name, s)]) for s in ("socketeer", "redis")}
join = {s: median([r["connect_seconds"] for r in pick(name, s)]) for s in ("socketeer", "redis")}
print(f"| 2000 idle clients | server memory per client, KiB | {mem['socketeer']:.1f} | {mem['redis']:.1f} | {mem['redis']/mem['socketeer']:.2f}x less | |")
print(f"| 2000 idle clients | all connected and joined, s | {join['socketeer']:.2f} | {join['redis']:.2f} | | |")
share = {}
for s in ("socketeer", "redis"):
    stalled = median([r["deliveries_per_sec"] for r in pick("stalled", s, "stalled")])
    alone = median([r["deliveries_per_sec"] for r in pick("stalled", s, "alone")])
    share[s] = stalled / alone
dropped = {s: f'{sum(r["stalled_dropped"] for r in pick("stalled", s, "stalled"))}/{len(pick("stalled", s, "stalled"))}' for s in ("socketeer", "redis")}
peak = {s: median([r["server_usage"]["rss_kib_peak"] / 1024 for r in pick("stalled", s, "stalled")]) for s in ("socketeer", "redis")}
print(f"| 20 readers + 1 never reading | readers' rate vs without it | {share['socketeer']:.0%} | {share['redis']:.0%} | | {once('stalled')} |")
print(f"| 20 readers + 1 never reading | never-reader dropped (runs) | {dropped['socketeer']} | {dropped['redis']} | | |")
print(f"| 20 readers + 1 never reading | server peak memory, MiB | {peak['socketeer']:.1f} | {peak['redis']:.1f} | | |")
name = "burst 20000"
got = {s: median([r["deliveries"] / max(r["expected"], 1) for r in pick(name, s)]) for s in ("socketeer", "redis")}
gone = {s: f'{sum(r["receivers_dropped"] for r in pick(name, s))}' for s in ("socketeer", "redis")}
took = {s: median([r["seconds"] for r in pick(name, s)]) for s in ("socketeer", "redis")}
peak = {s: median([r["server_usage"]["rss_kib_peak"] / 1024 for r in pick(name, s)]) for s in ("socketeer", "redis")}
print(f"| 100 clients, a burst of 20,000 × 100 B from 1 sender | deliveries that arrived | {got['socketeer']:.1%} | {got['redis']:.1%} | | {once(name)} |")
print(f"| 100 clients, a burst of 20,000 × 100 B from 1 sender | readers dropped (all runs) | {gone['socketeer']} | {gone['redis']} | | |")
print(f"| 100 clients, a burst of 20,000 × 100 B from 1 sender | until the last delivery, s | {took['socketeer']:.2f} | {took['redis']:.2f} | {took['redis']/took['socketeer']:.2f}x faster | |")
print(f"| 100 clients, a burst of 20,000 × 100 B from 1 sender | server peak memory, MiB | {peak['socketeer']:.1f} | {peak['redis']:.1f} | | |")
cpu = {s: median([r["server_usage"]["cpu_seconds"] / max(r["deliveries"], 1) * 1e9 for r in pick("fan-out 100", s)]) for s in ("socketeer", "redis")}
print(f"| 100 clients, as fast as possible | server CPU per delivery, ns | {cpu['socketeer']:.0f} | {cpu['redis']:.0f} | {cpu['redis']/cpu['socketeer']:.2f}x less | |")
PY
