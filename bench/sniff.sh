#!/usr/bin/env bash
# socketeer sniff vs tcpdump, side by side in one run: both capture the same flood of
# small UDP datagrams on loopback at the same time, each writing a pcap file with a
# filter on the flood's port, and each reports what it captured and what the kernel
# dropped for it.
#
#   bench/sniff.sh                      # 50k and 100k datagrams/s, then as many as 2 senders can
#   RATES="50000 max" SECONDS_EACH=5 FLOODERS=3 bench/sniff.sh
#
# The generator is a few lines of Python (one connected UDP socket, 16-byte payloads,
# paced in 1 ms batches; one process sends about 120k datagrams/s here, so "max" runs
# FLOODERS of them unpaced, which also leaves the sniffers less CPU); a receiver socket
# that never reads keeps the port bound, so no ICMP errors join the flood.
#
# Both sniffers run with their defaults (socketeer: 32 MiB TPACKET_V3 ring; tcpdump:
# libpcap's 2 MiB TPACKET_V3 ring), then both with -B 2048. Each is stopped with SIGINT
# once its file has stopped growing and a further 1.5 s has passed (a ring hands over a
# block when it is full or after its timeout, 10 ms for socketeer and 1 s for tcpdump;
# stopping sooner would discard the last block's packets).
# Needs root (raw sockets) and tcpdump (installed with apt-get if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
[ "$(id -u)" = 0 ] || { echo "bench/sniff.sh: run as root (packet capture)" >&2; exit 1; }
need tcpdump tcpdump
rates=${RATES:-50000 100000 max}
flooders=${FLOODERS:-2}
seconds=${SECONDS_EACH:-3}
build
scratch

# A bound UDP port that never reads: datagrams to it are dropped after loopback.
python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
time.sleep(86400)' >"$work/port" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")

# Sends datagrams to $port at a rate (or "max") for some seconds; prints "sent seconds".
flood_one() {
  python3 - "$port" "$1" "$2" <<'PY'
import socket, sys, time
port, rate, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("127.0.0.1", port))
payload = b"x" * 16
unpaced = rate == "max"
rate = 0 if unpaced else int(rate)
batch = 256 if unpaced else max(1, rate // 1000)
start = time.perf_counter()
sent = 0
while True:
    now = time.perf_counter()
    if now - start >= seconds:
        break
    for _ in range(batch):
        s.send(payload)
    sent += batch
    if not unpaced:
        delay = start + sent / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
print(sent, time.perf_counter() - start)
PY
}

# flood_one, once per rate, or $flooders times at once for "max"; prints the sums.
flood() {
  local n=1
  [ "$1" = max ] && n=$flooders
  local i
  for i in $(seq "$n"); do flood_one "$1" "$2" >"$work/flood.$i.out" & done
  wait
  cat "$work"/flood.*.out | awk '{ sent += $1; if ($2 > took) took = $2 } END { print sent, took }'
  rm -f "$work"/flood.*.out
}

# CPU seconds (user + system) a process has used so far.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }

# Waits until a file stops growing (the sniffer has caught up).
settle() {
  local last=-1 size
  for _ in $(seq 50); do
    size=$(stat -c %s "$1" 2>/dev/null || echo 0)
    [ "$size" = "$last" ] && return
    last=$size
    sleep 0.2
  done
}

# rate buffer_args: one round, both sniffers at once; prints a table row.
round() {
  local rate=$1 ours_b=$2 theirs_b=$3
  "$bin" sniff --json -i lo -w "$work/ours.pcap" $ours_b udp port "$port" >"$work/ours.out" 2>"$work/ours.err" &
  local ours=$!
  pids+=("$ours")
  tcpdump -i lo -n -w "$work/theirs.pcap" $theirs_b udp port "$port" 2>"$work/theirs.err" &
  local theirs=$!
  pids+=("$theirs")
  for _ in $(seq 100); do
    grep -q listening "$work/ours.out" 2>/dev/null && grep -q listening "$work/theirs.err" 2>/dev/null && break
    sleep 0.05
  done
  read -r sent took < <(flood "$rate" "$seconds")
  settle "$work/ours.pcap"
  settle "$work/theirs.pcap"
  sleep 1.5
  local ours_cpu theirs_cpu
  ours_cpu=$(cpu "$ours")
  theirs_cpu=$(cpu "$theirs")
  kill -INT "$ours" "$theirs"
  wait "$ours" "$theirs" || true
  python3 - "$rate" "$sent" "$took" "$work/ours.out" "$work/theirs.err" "$ours_cpu" "$theirs_cpu" "$ours_b" <<'PY'
import json, re, sys
rate, sent, took, ours_out, theirs_err, ours_cpu, theirs_cpu, buffers = sys.argv[1:]
sent, took = int(sent), float(took)
summary = [json.loads(l) for l in open(ours_out) if '"summary"' in l][0]
text = open(theirs_err).read()
def count(what):
    return int(re.search(r"(\d+) packets? " + what, text).group(1))
t_cap, t_drop = count("captured"), count("dropped by kernel")
o_cap, o_drop = summary["matched"], summary["dropped"]
ratio = lambda a, b: f"{a / b:.2f}x" if b else "-"
print(f"| {rate if rate == 'max' else f'{int(rate):,}'} | {'defaults' if not buffers else buffers} | {sent / took:,.0f} "
      f"| {o_cap:,} / {o_drop:,} | {t_cap:,} / {t_drop:,} | {ratio(o_cap, t_cap)} | {ours_cpu} / {theirs_cpu} |")
PY
}

echo "| rate asked (datagrams/s) | buffers | rate sent | socketeer captured / dropped | tcpdump captured / dropped | captured ratio | CPU s socketeer / tcpdump |"
echo "|---|---|---|---|---|---|---|"
for rate in $rates; do
  round "$rate" "" ""
done
round max "-B 2048" "-B 2048"
