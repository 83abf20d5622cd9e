#!/usr/bin/env bash
# Port scanners side by side, in one run, on one fixture: a full 1-65535 scan of
# 127.0.0.1 with 20 TCP listeners (and 20 UDP echo sockets for the UDP rows), inside a
# private network namespace (unshare -n, its own loopback) so nothing else on the
# machine is touched or counted.
#
#   bench/scan.sh                 # 10 rounds, every scanner once per round
#   ROUNDS=3 bench/scan.sh
#
# Rows: socketeer's connect scan vs nmap -sT and RustScan; socketeer --syn vs nmap -sS;
# socketeer --udp vs nmap -sU. Each cell is the median wall time of the rounds (rounds
# interleave the scanners: the machine is shared and noisy), how many rounds found
# exactly the fixture's open ports, and the peak RSS (/usr/bin/time -v).
#
# Needs root (namespace, raw sockets), nmap and GNU time (installed with apt-get), and
# RustScan (RUSTSCAN=/path, or on PATH, or `cargo install rustscan` into ~/.cache).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
rounds=${ROUNDS:-10}

if [ -z "${SCAN_BENCH_NETNS:-}" ]; then
  [ "$(id -u)" = 0 ] || { echo "bench/scan.sh: run as root (network namespace, raw sockets)" >&2; exit 1; }
  need nmap nmap
  need /usr/bin/time time
  if [ -z "${RUSTSCAN:-}" ]; then
    RUSTSCAN=$(command -v rustscan || true)
  fi
  if [ -z "$RUSTSCAN" ]; then
    root=${XDG_CACHE_HOME:-$HOME/.cache}/socketeer-bench
    [ -x "$root/bin/rustscan" ] || cargo install -q rustscan --root "$root"
    RUSTSCAN=$root/bin/rustscan
  fi
  cargo build --release -q
  export RUSTSCAN SCAN_BENCH_NETNS=1
  exec unshare -n "$0" "$@"
fi

ip link set lo up
bin=target/release/socketeer
ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d)
fixture_pid=
cleanup() { [ -n "$fixture_pid" ] && kill "$fixture_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

ports="22,80,443,1000,2000,3000,8080,9000,10000,20000,30000,33000,40000,45000,50000,55000,60000,61000,65000,65535"
python3 - "$ports" >"$work/fixture.log" 2>&1 <<'PY' &
import socket, sys, threading, time
ports = [int(p) for p in sys.argv[1].split(",")]
keep = []
for port in ports:
    tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", port)); tcp.listen(1024); keep.append(tcp)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("127.0.0.1", port))
    def echo(s=udp):
        while True:
            data, peer = s.recvfrom(2048); s.sendto(data, peer)
    threading.Thread(target=echo, daemon=True).start()
print("ready", flush=True)
time.sleep(86400)
PY
fixture_pid=$!
for _ in $(seq 50); do grep -q ready "$work/fixture.log" 2>/dev/null && break; sleep 0.1; done

# name command... : runs it under GNU time, prints "seconds max_rss_kb open_ports_csv".
measure() {
  local name=$1; shift
  /usr/bin/time -v -o "$work/time" "$@" >"$work/out" 2>/dev/null || true
  local secs rss open
  secs=$(python3 -c 'import sys
for l in open(sys.argv[1]):
    if "Elapsed (wall clock)" in l:
        v = l.rsplit(" ", 1)[1].strip().split(":")
        print(sum(float(x) * 60 ** i for i, x in enumerate(reversed(v))))' "$work/time")
  rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$work/time")
  open=$(python3 - "$name" "$work/out" <<'PY'
import re, sys
name, path = sys.argv[1], sys.argv[2]
text = open(path).read()
if name.startswith("nmap"):
    m = re.search(r"Ports: ([^\t\n]*)", text)
    found = [e.split("/")[0].strip() for e in m.group(1).split(", ") if e.split("/")[1] == "open"] if m else []
elif name == "rustscan":
    m = re.search(r"\[([\d,]*)\]", text)
    found = m.group(1).split(",") if m and m.group(1) else []
else:
    found = [l.rsplit(":", 1)[1] for l in text.split()]
print(",".join(sorted(found, key=int)))
PY
)
  echo "$name $secs $rss $open" >>"$work/runs"
}

for _ in $(seq "$rounds"); do
  measure socketeer "$bin" scan 127.0.0.1 -p- -o list
  measure nmap-sT nmap -sT -p- -n -Pn -T5 --min-rate 50000 127.0.0.1 -oG -
  measure rustscan "$RUSTSCAN" -a 127.0.0.1 -r 1-65535 -g --ulimit 20000
  measure socketeer-syn "$bin" scan 127.0.0.1 -p- --syn -o list
  measure nmap-sS nmap -sS -p- -n -Pn -T5 --min-rate 50000 127.0.0.1 -oG -
  measure socketeer-udp "$bin" scan 127.0.0.1 -p- --udp -o list
  measure nmap-sU nmap -sU -p- -n -Pn --min-rate 20000 127.0.0.1 -oG -
done

echo "# bench/scan.sh: $(nproc) cores, $(date -u +%Y-%m-%d), $rounds rounds, $(uname -r), nmap $(nmap --version | awk 'NR==1{print $3}'), $("$RUSTSCAN" --version 2>/dev/null | head -1)"
echo
python3 - "$work/runs" "$ports" "$rounds" <<'PY'
import statistics, sys
path, ports, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
expected = ",".join(sorted(ports.split(","), key=int))
runs = {}
for line in open(path):
    parts = line.split()
    name, secs, rss = parts[0], float(parts[1]), int(parts[2])
    found = parts[3] if len(parts) > 3 else ""
    runs.setdefault(name, []).append((secs, rss, found == expected))
def cell(name):
    r = runs[name]
    return statistics.median(s for s, _, _ in r), max(m for _, m, _ in r) / 1024, sum(e for _, _, e in r)
rows = [
    ("TCP connect", "socketeer scan -p-", "socketeer", [("nmap -sT -T5 --min-rate 50000", "nmap-sT", 0.6), ("RustScan (batch 4500)", "rustscan", 0.25)]),
    ("TCP SYN", "socketeer scan -p- --syn", "socketeer-syn", [("nmap -sS -T5 --min-rate 50000", "nmap-sS", 0.6)]),
    ("UDP", "socketeer scan -p- --udp", "socketeer-udp", [("nmap -sU --min-rate 20000", "nmap-sU", 1.0)]),
]
print("| scan | tool | median time | ratio (socketeer / tool) | target | exact open set | peak RSS |")
print("|---|---|---|---|---|---|---|")
for kind, ours_label, ours, others in rows:
    t, rss, exact = cell(ours)
    print(f"| {kind} | {ours_label} | {t:.2f} s | | | {exact}/{rounds} | {rss:.1f} MB |")
    for label, name, target in others:
        ot, orss, oexact = cell(name)
        ratio = t / ot
        verdict = "met" if ratio <= target else "MISSED"
        print(f"| {kind} | {label} | {ot:.2f} s | {ratio:.2f}x | ≤ {target}x ({verdict}) | {oexact}/{rounds} | {orss:.1f} MB |")
PY
