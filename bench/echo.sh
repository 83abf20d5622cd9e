#!/usr/bin/env bash
# Echo servers side by side, in one run, under one load generator:
#   socketeer's echo server, redis-server answering PING, and openbsd-inetd's built-in echo.
# Each row loads the three with the same connections, pipelining depth and 6-byte requests
# (socketeer and inetd get "xxxxx\n", Redis gets "PING\r\n" and answers "+PONG\r\n").
#
#   bench/echo.sh                      # 3 rounds of 3 s per server and cell
#   ROUNDS=5 DURATION=10s bench/echo.sh
#
# Rounds interleave the servers, and each cell reports the median round: on a shared
# 2-core machine, with the load generator on it too, single runs vary by about 10%.
#
# Needs redis-server and openbsd-inetd (installed with apt-get when run as root); inetd
# binds port 7 on 127.7.7.7, which needs root. Everything stays on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
duration=${DURATION:-3s}
rounds=${ROUNDS:-3}
matrix=${MATRIX:-"1:1 50:1 200:1 50:16"}

need redis-server redis-server
need inetd openbsd-inetd
build

scratch

echo_port=$(free_port)
"$bin" -q echo serve --tcp --port "$echo_port" >/dev/null & pids+=($!)
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning >/dev/null & pids+=($!)
echo "127.7.7.7:echo stream tcp4 nowait root internal" >"$work/inetd.conf"
inetd -d -i -R 100000 "$work/inetd.conf" >/dev/null 2>&1 & pids+=($!)
sleep 1

measure() { # target extra-args... -> "requests_per_sec p99_us"
  local target=$1; shift
  "$bin" bench echo "$target" --duration "$duration" --json "$@" |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print(round(r["requests_per_sec"]), r["latency"]["p99_us"])'
}

echo "# bench/echo.sh: $(nproc) cores, $(date -u +%Y-%m-%d), median of ${rounds} rounds of ${duration}, load generator: socketeer bench echo"
echo
echo "| connections | pipeline | socketeer req/s | redis-server req/s | inetd req/s | socketeer / redis | socketeer / inetd | p99 µs socketeer / redis / inetd |"
echo "|---|---|---|---|---|---|---|---|"
for cell in $matrix; do
  conns=${cell%%:*} pipeline=${cell#*:}
  : >"$work/cell"
  for _ in $(seq "$rounds"); do
    echo "ours $(measure "127.0.0.1:$echo_port" -c "$conns" -p "$pipeline" -s 6)" >>"$work/cell"
    echo "redis $(measure "127.0.0.1:$redis_port" -c "$conns" -p "$pipeline" --redis)" >>"$work/cell"
    echo "inetd $(measure "127.7.7.7:7" -c "$conns" -p "$pipeline" -s 6)" >>"$work/cell"
  done
  python3 - "$conns" "$pipeline" "$work/cell" <<'PY'
import statistics, sys
conns, pipeline, path = sys.argv[1:]
runs = {}
for line in open(path):
    name, rps, p99 = line.split()
    runs.setdefault(name, []).append((int(rps), int(p99)))
def median(name):
    ordered = sorted(runs[name])
    return ordered[len(ordered) // 2]
(ours, op), (redis, rp), (inetd, ip) = median("ours"), median("redis"), median("inetd")
print(f"| {conns} | {pipeline} | {ours:,} | {redis:,} | {inetd:,} | {ours/redis:.2f}x | {ours/inetd:.2f}x | {op} / {rp} / {ip} |")
PY
done
