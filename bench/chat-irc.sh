#!/usr/bin/env bash
# The chat server spoken to as IRC, beside ngircd (a packaged IRC server), in one run,
# under one load generator (socketeer bench chat --irc: every client registers, joins
# #lobby and reads PRIVMSGs; senders PRIVMSG #lobby).
#
#   bench/chat-irc.sh                      # 3 rounds of 3 s per server and scenario
#   ROUNDS=5 DURATION=5s bench/chat-irc.sh
#
# Scenarios:
#   fan-out 100     100 clients, 1 sender, 64-byte messages as fast as a window of 256
#                   in-flight messages allows: deliveries/s (messages received, summed)
#   rate 500/s      100 clients, 1 sender at 500 messages/s: send-to-receive p99 and p50
#   idle 1000       1000 clients that register, join and stay silent: server memory per
#                   client (resident, from /proc, after they joined) and time to join
# Both servers run without flood control (socketeer: --rate-limit off; ngircd:
# MaxPenaltyTime = 0), without per-address caps, on loopback. Every measurement starts
# a fresh server; rounds interleave the two servers, and each cell is the median round.
#
# Needs ngircd (installed with apt-get when run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
duration=${DURATION:-3s}
rounds=${ROUNDS:-3}

need ngircd ngircd
ngircd=$(command -v ngircd || echo /usr/sbin/ngircd)
build
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d)
server_pid=
cleanup() { if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi; rm -rf "$work"; }
trap cleanup EXIT

# ngircd.conf PORT: a server of its own on loopback, with no limits in the load's way.
ngircd_conf() {
  cat <<EOF
[Global]
Name = bench.ngircd.local
Info = bench
Listen = 127.0.0.1
Ports = $1
MotdPhrase = bench
[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxPenaltyTime = 0
PingTimeout = 600
PongTimeout = 600
[Options]
DNS = no
Ident = no
PAM = no
[SSL]
EOF
}

# measure NAME SERVER BENCH-ARGS...: one run on a fresh server, appended to results.
measure() {
  local name=$1 server=$2; shift 2
  local port; port=$(free_port)
  if [ "$server" = socketeer ]; then
    "$bin" -q chat serve --port "$port" --rate-limit off --max-per-ip off --max-clients 5000 >/dev/null 2>>"$work/server.log" &
  else
    ngircd_conf "$port" >"$work/ngircd.conf"
    "$ngircd" --nodaemon --config "$work/ngircd.conf" >/dev/null 2>>"$work/server.log" &
  fi
  server_pid=$!
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  "$bin" bench chat "127.0.0.1:$port" --irc --server-pid "$server_pid" --json "$@" |
    python3 -c 'import json,sys; r=json.load(sys.stdin); r["name"]=sys.argv[1]; r["server_name"]=sys.argv[2]; print(json.dumps(r))' \
      "$name" "$server" >>"$work/results"
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
}

for _ in $(seq "$rounds"); do
  for server in socketeer ngircd; do
    measure "fan-out 100" "$server" -c 100 -d "$duration" --timeout 10s
    measure "rate 500/s" "$server" -c 100 --rate 500 -d "$duration" --timeout 10s
    measure "idle 1000" "$server" -c 1000 --senders 0 -d 1s --timeout 60s
  done
done

echo "# bench/chat-irc.sh: $(nproc) cores, $(date -u +%Y-%m-%d), $("$ngircd" --version | head -1), median of ${rounds} rounds of ${duration}, load generator: socketeer bench chat --irc"
echo
python3 - "$work/results" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
def pick(name, server):
    return [r for r in runs if r["name"] == name and r["server_name"] == server]
def median(values):
    return statistics.median(values)
def once(name):
    return "yes" if all(r["exactly_once_in_order"] for r in runs if r["name"] == name and r["senders"] > 0) else "NO"
print("| scenario | measure | socketeer (IRC) | ngircd | socketeer vs ngircd | every message once, in order |")
print("|---|---|---|---|---|---|")
name = "fan-out 100"
ours, theirs = (median([r["deliveries_per_sec"] for r in pick(name, s)]) for s in ("socketeer", "ngircd"))
print(f"| 100 clients, 1 sender, 64 B, as fast as possible | deliveries/s | {ours:,.0f} | {theirs:,.0f} | {ours/theirs:.2f}x | {once(name)} |")
cpu = {s: median([r["server_usage"]["cpu_seconds"] / max(r["deliveries"], 1) * 1e9 for r in pick(name, s)]) for s in ("socketeer", "ngircd")}
print(f"| 100 clients, as fast as possible | server CPU per delivery, ns | {cpu['socketeer']:.0f} | {cpu['ngircd']:.0f} | {cpu['ngircd']/cpu['socketeer']:.2f}x less | |")
name = "rate 500/s"
p99 = {s: median([r["latency"]["p99_us"] for r in pick(name, s)]) for s in ("socketeer", "ngircd")}
p50 = {s: median([r["latency"]["p50_us"] for r in pick(name, s)]) for s in ("socketeer", "ngircd")}
print(f"| 100 clients, 500 messages/s | p99 (p50) latency µs | {p99['socketeer']:,.0f} ({p50['socketeer']:,.0f}) | {p99['ngircd']:,.0f} ({p50['ngircd']:,.0f}) | {p99['ngircd']/p99['socketeer']:.2f}x lower | {once(name)} |")
name = "idle 1000"
mem = {s: median([r["server_usage"]["rss_kib_per_connection"] for r in pick(name, s)]) for s in ("socketeer", "ngircd")}
join = {s: median([r["connect_seconds"] for r in pick(name, s)]) for s in ("socketeer", "ngircd")}
print(f"| 1000 idle clients | server memory per client, KiB | {mem['socketeer']:.1f} | {mem['ngircd']:.1f} | {mem['ngircd']/mem['socketeer']:.2f}x less | |")
print(f"| 1000 idle clients | all registered and joined, s | {join['socketeer']:.2f} | {join['ngircd']:.2f} | | |")
PY
